"""SpamAssassin's ImageInfo plugin: the count, pixel area and dimensions of the GIF, PNG and
JPEG images a message carries (base64 image parts), read from their headers as ImageInfo.pm
reads them, and the ratio of text to image area.

Debian's 20_imageinfo.cf uses it (``DC_GIF_UNO_LARGO``, ``DC_IMAGE_SPAM_*``) and defines there
``__HTML_IMG_ONLY``, which ``T_REMOTE_IMAGE``, ``HDRS_LCASE_IMGONLY`` and a dozen more metas
read.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from gateway_milter.antispam.saeval import _eval
from gateway_milter.antispam.saview import body_lines

if TYPE_CHECKING:
    from gateway_milter.antispam.saview import SaMessage

TYPES = ("gif", "png", "jpeg")
_SOF = frozenset([*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)])


def dimensions(kind: str, data: bytes) -> tuple[int, int] | None:
    """(height, width) from an image's header, None when it cannot be read (as ImageInfo's
    get_details: GIF's logical screen, PNG's IHDR chunk, JPEG's first start-of-frame)."""
    if kind == "gif":
        if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 10:
            return None
        width, height = struct.unpack("<HH", data[6:10])
        return (height, width) if height and width else None
    if kind == "png":
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            return None
        pos = 8
        while pos < len(data):
            head = data[pos:pos + 8]
            if len(head) < 8:
                break
            length, ctype = struct.unpack(">I4s", head)
            pos += 8
            if ctype == b"IEND":
                break
            if ctype == b"IHDR" and length == 13:
                body = data[pos:pos + 8]
                if len(body) < 8:
                    return None
                width, height = struct.unpack(">II", body)
                return (height, width) if height and width else None
            # (ImageInfo does not skip a chunk's data: it reads the next 8 bytes as a header)
        return None
    if kind == "jpeg":
        if data[:2] != b"\xff\xd8":
            return None
        pos = 2
        while True:
            head = data[pos:pos + 4]
            if len(head) < 4:
                return None
            xx, mark, length = struct.unpack(">BBH", head)
            if xx != 0xFF or mark in (0xDA, 0xD9) or length < 2:
                return None
            pos += 4
            block = data[pos:pos + length - 2]
            if mark in _SOF:
                if len(block) < 5:
                    return None
                _prec, height, width = struct.unpack(">BHH", block[:5])
                return (height, width) if height and width else None
            pos += len(block)
    return None


def _facts(m: SaMessage) -> dict[str, Any]:
    """ImageInfo's _get_images, once per message: per type (and ``all``) the count, the
    summed pixel area and the set of dimensions; the names of the images it could read."""
    got: dict[str, Any] | None = m.cache.get("imageinfo")
    if got is not None:
        return got
    facts: dict[str, Any] = {"names": set()}
    for t in (*TYPES, "all"):
        facts[f"count_{t}"] = 0
        facts[f"pc_{t}"] = 0
        facts[f"dems_{t}"] = set()
    for kind, name, data in m.images:
        dims = dimensions(kind, data)
        if dims is not None:
            facts[f"pc_{kind}"] += dims[0] * dims[1]
            facts[f"dems_{kind}"].add(dims)
            if name:
                facts["names"].add(name)
        facts[f"count_{kind}"] += 1
    for t in TYPES:
        facts["pc_all"] += facts[f"pc_{t}"]
        facts["count_all"] += facts[f"count_{t}"]
        facts["dems_all"] |= facts[f"dems_{t}"]
    m.cache["imageinfo"] = facts
    return facts


def _check(lo: Any, hi: Any, value: float, no_max_equal: bool = False) -> int:
    """ImageInfo's result_check."""
    if value < float(lo):
        return 0
    if hi is not None and value > float(hi):
        return 0
    if no_max_equal and hi is not None and value == float(hi):
        return 0
    return 1


def _arg(args: tuple[Any, ...], i: int) -> Any:
    return args[i] if len(args) > i else None


@_eval("image_count")
def image_count(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    kind, lo, hi = _arg(args, 0), _arg(args, 1), _arg(args, 2)
    if lo is None or f"count_{kind}" not in _facts(m):
        return 0
    return _check(lo, hi, _facts(m)[f"count_{kind}"])


@_eval("pixel_coverage")
def pixel_coverage(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    kind, lo, hi = _arg(args, 0), _arg(args, 1), _arg(args, 2)
    if kind is None or lo is None or f"pc_{kind}" not in _facts(m):
        return 0
    return _check(lo, hi, _facts(m)[f"pc_{kind}"])


@_eval("image_to_text_ratio")
def image_to_text_ratio(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """The text's length over the images' area; the text is the body lines for a body rule,
    the decoded parts for a rawbody rule (the engine passes the rule's kind first)."""
    rule_kind, kind, lo, hi = _arg(args, 0), _arg(args, 1), _arg(args, 2), _arg(args, 3)
    if kind is None or lo is None or hi is None:
        return 0
    area = _facts(m).get(f"pc_{kind}", 0)
    textlen = m.rawbody_len if rule_kind == "rawbody" else sum(map(len, body_lines(m)))
    if textlen <= 0 or area <= 0:
        return 0
    return _check(lo, hi, textlen / area, True)


@_eval("image_size_exact")
def image_size_exact(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    kind, h, w = _arg(args, 0), _arg(args, 1), _arg(args, 2)
    if kind is None or h is None or w is None:
        return 0
    return int((int(float(h)), int(float(w))) in _facts(m).get(f"dems_{kind}", ()))


@_eval("image_size_range")
def image_size_range(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    kind, minh, minw, maxh, maxw = (_arg(args, i) for i in range(5))
    if kind is None or minh is None or minw is None:
        return 0
    for h, w in _facts(m).get(f"dems_{kind}", ()):
        if h < float(minh) or w < float(minw):
            continue
        if (maxh is not None and h > float(maxh)) or (maxw is not None and w > float(maxw)):
            continue
        return 1
    return 0


@_eval("image_named")
def image_named(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(bool(args) and str(args[0]) in _facts(m)["names"])
