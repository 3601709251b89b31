"""SpamAssassin's ImageInfo plugin (imageinfo.py): image counts, areas and dimensions read from
GIF, PNG and JPEG headers, and the text-to-image ratio."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

from gateway_milter.antispam.engine import engine_for
from gateway_milter.antispam.imageinfo import dimensions
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, write_rules


def gif(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + b"\x00" * 20 + b";"


def png(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + b"\xaeB`\x82"


def jpeg(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xda\x00\x08" + b"\x00" * 6 + b"\xff\xd9"


def test_it_reads_the_dimensions_of_each_format() -> None:
    assert dimensions("gif", gif(640, 480)) == (480, 640)
    assert dimensions("png", png(300, 200)) == (200, 300)
    assert dimensions("jpeg", jpeg(1024, 768)) == (768, 1024)
    assert dimensions("gif", b"GIF89a\x00") is None and dimensions("png", b"\x89PNG\r\n\x1a\n") is None
    assert dimensions("jpeg", b"\xff\xd8\xff\xda") is None and dimensions("gif", b"not an image") is None


RULES = """
body  T_GIF_1     eval:image_count('gif','1','1')
body  T_IMG_2P    eval:image_count('all','2')
body  T_GIF_AREA  eval:pixel_coverage('gif','180000','475000')
body  T_ALL_AREA  eval:pixel_coverage('all','62500','300000')
body  T_SIZE      eval:image_size_exact('png','200','300')
body  T_RANGE     eval:image_size_range('jpeg','700','1000')
body  T_RATIO     eval:image_to_text_ratio('all','0.000','0.015')
body  T_NAMED     eval:image_named('banner.gif')
"""
for _n in [x.split()[1] for x in RULES.split("\n") if x.strip()]:
    RULES += f"score {_n} 1\n"


def message(*images: tuple[str, str, bytes], text: str = "Look at this.") -> bytes:
    out = ("From: a@sender.test\r\nTo: bob@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
           f"--b1\r\nContent-Type: text/plain\r\n\r\n{text}\r\n")
    for ctype, name, data in images:
        out += (f'--b1\r\nContent-Type: {ctype}; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                + base64.encodebytes(data).decode().replace("\n", "\r\n"))
    return (out + "--b1--\r\n").encode()


def test_the_evals_count_and_measure_the_images(tmp_path: Path) -> None:
    eng = engine_for((str(write_rules(tmp_path, RULES)),), 2, include_default=False)
    assert not eng.unsupported, eng.unsupported

    def hits(raw: bytes) -> set[str]:
        return {h.name for h in eng.run(message_view(make_ctx(raw))).hits}

    one_gif = message(("image/gif", "banner.gif", gif(600, 400)))  # 240,000 pixels
    assert hits(one_gif) == {"T_GIF_1", "T_GIF_AREA", "T_ALL_AREA", "T_RATIO", "T_NAMED"}
    several = message(("image/png", "a.png", png(300, 200)), ("image/jpeg", "b.jpg", jpeg(1024, 768)))
    assert hits(several) == {"T_IMG_2P", "T_SIZE", "T_RANGE", "T_RATIO"}
    # a long text: the ratio of text to image area is over 0.015
    assert "T_RATIO" not in hits(message(("image/gif", "x.gif", gif(100, 100)), text="word " * 100))
    assert hits(message(text="no images")) == set()
