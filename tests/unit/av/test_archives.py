"""Bounded in-memory archive listing: formats, nesting, encryption, bombs."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import time
import zipfile
from pathlib import Path

import py7zr
import pytest

from gateway_milter.mime.archives import ArchiveLimits, inspect_archive
from gateway_milter.mime.detect import _archive_signature, detect_type
from tests.unit.av.mailbuild import zip_bytes

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 48 + b"PE\0\0" + b"\0" * 200


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sevenzip_bytes(members: dict[str, bytes], password: str | None = None, header_encryption: bool = False) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password, header_encryption=header_encryption) as z:
        for name, data in members.items():
            z.writestr(data, name)
    return buf.getvalue()


def test_it_lists_a_zip_with_types() -> None:
    rep = inspect_archive(zip_bytes({"readme.txt": b"hello there\n", "setup.exe": EXE}), "zip", "a.zip")
    assert {e.name for e in rep.entries} == {"readme.txt", "setup.exe"}
    exe = next(e for e in rep.entries if e.name == "setup.exe")
    assert exe.detected_type in ("application/x-dosexec", "application/vnd.microsoft.portable-executable")
    assert not rep.unscannable


def test_it_walks_nested_archives_of_every_kind() -> None:
    inner = zip_bytes({"deep/payload.exe": EXE})
    tgz = gzip.compress(tar_bytes({"inner.zip": inner}))
    outer = sevenzip_bytes({"bundle.tar.gz": tgz, "notes.txt.xz": lzma.compress(b"notes"),
                            "data.bz2": bz2.compress(b"bzip data")})
    rep = inspect_archive(outer, "7z", "outer.7z")
    names = {e.name for e in rep.entries}
    assert {"bundle.tar.gz", "bundle.tar", "inner.zip", "deep/payload.exe", "notes.txt", "data"} <= names
    exe = next(e for e in rep.entries if e.name == "deep/payload.exe")
    assert exe.chain == ("outer.7z", "bundle.tar.gz", "bundle.tar", "inner.zip") and exe.depth == 3
    assert not rep.unscannable


def test_it_reports_encrypted_7z_with_and_without_encrypted_names() -> None:
    rep = inspect_archive(sevenzip_bytes({"a.exe": EXE}, password="secret"), "7z")
    assert rep.encrypted and rep.unscannable and [e.name for e in rep.entries] == ["a.exe"]
    rep = inspect_archive(sevenzip_bytes({"a.exe": EXE}, password="secret", header_encryption=True), "7z")
    assert rep.encrypted and rep.unscannable and rep.entries == []


def test_it_reports_an_encrypted_zip(tmp_path: Path) -> None:
    # zipfile cannot write encrypted members: set the PKWARE encryption flag on a stored entry
    data = bytearray(zip_bytes({"secret.doc": b"x" * 50}, zipfile.ZIP_STORED))
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        i = data.find(sig)
        off = i + (6 if sig == b"PK\x03\x04" else 8)
        data[off] |= 0x01
    rep = inspect_archive(bytes(data), "zip")
    assert rep.encrypted and rep.unscannable and rep.entries[0].encrypted


def test_it_stops_a_zip_bomb_on_ratio() -> None:
    bomb = zip_bytes({"zeros.bin": b"\0" * (20 * 1024 * 1024)})
    t0 = time.monotonic()
    rep = inspect_archive(bomb, "zip", "bomb.zip")
    assert rep.limit == "ratio" and rep.unscannable
    assert time.monotonic() - t0 < 2.0


def test_it_stops_a_bomb_that_lies_about_its_size() -> None:
    data = bytearray(zip_bytes({"zeros.bin": b"\0" * (4 * 1024 * 1024)}))
    # rewrite the declared uncompressed size (local and central headers) to 1000 bytes
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = data.find(sig)
        data[i + off:i + off + 4] = (1000).to_bytes(4, "little")
    rep = inspect_archive(bytes(data), "zip", limits=ArchiveLimits(max_ratio=10_000))
    assert rep.unscannable and (rep.limit == "ratio" or rep.corrupt)


def test_it_stops_on_total_size() -> None:
    rnd = os.urandom(300 * 1024)  # incompressible, so no ratio trip
    rep = inspect_archive(zip_bytes({f"f{i}": rnd for i in range(5)}), "zip",
                          limits=ArchiveLimits(max_total_bytes=1024 * 1024))
    assert rep.limit == "total_size"


def test_it_stops_a_deep_nesting_bomb() -> None:
    data = EXE
    for i in range(20):
        data = zip_bytes({f"level{i}.zip" if i else "x.exe": data})
    t0 = time.monotonic()
    rep = inspect_archive(data, "zip", limits=ArchiveLimits(max_depth=5))
    assert rep.limit == "depth" and time.monotonic() - t0 < 2.0


def test_it_stops_on_entry_count() -> None:
    data = zip_bytes({f"m{i}.txt": b"x" for i in range(10_000)}, zipfile.ZIP_STORED)
    t0 = time.monotonic()
    rep = inspect_archive(data, "zip")
    assert rep.limit == "entries" and rep.unscannable and time.monotonic() - t0 < 2.0


def test_it_stops_on_time() -> None:
    data = zip_bytes({f"m{i}.txt": os.urandom(2000) for i in range(1500)})
    rep = inspect_archive(data, "zip", limits=ArchiveLimits(time_budget_s=0.001))
    assert rep.limit == "time"


@pytest.mark.parametrize("kind,data", [
    ("zip", b"PK\x03\x04garbage" * 10), ("7z", b"7z\xbc\xaf\x27\x1c" + b"\0" * 40),
    ("gzip", b"\x1f\x8b\x08\x00garbage"), ("xz", b"\xfd7zXZ\x00broken"), ("tar", b"\0" * 10 + b"x" * 600),
])
def test_it_reports_corrupt_archives(kind: str, data: bytes) -> None:
    rep = inspect_archive(data, kind)
    assert rep.unscannable, rep


def test_it_reports_rar_as_unsupported() -> None:
    rep = inspect_archive(b"Rar!\x1a\x07\x00" + b"\0" * 30, "rar")
    assert rep.unsupported == "rar" and rep.unscannable


def test_it_never_writes_member_names_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    evil = {"../../escape.txt": b"x", "/abs/path.txt": b"y", "dir/../../z.txt": b"z"}
    inspect_archive(zip_bytes(evil), "zip")
    # (py7zr refuses to write such names, and refuses to read them too: that gives "corrupt")
    inspect_archive(tar_bytes(evil), "tar")
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "escape.txt").exists()


def test_it_shares_one_time_budget_between_the_archives_of_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.mime import view as view_mod
    from tests.unit.av.mailbuild import HEAD, b64

    parts = b"".join(b'--b\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n'
                     b'Content-Disposition: attachment; filename="a%d.zip"\r\n\r\n' % i
                     + b64(zip_bytes({f"f{j}": os.urandom(3000) for j in range(300)})) for i in range(4))
    v = view_mod.parse_message(HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n")
    monkeypatch.setattr(view_mod, "ARCHIVE_TIME_PER_MESSAGE_S", 0.0)
    reports = [v.archive(p) for p in v.parts]
    assert all(r is not None and r.limit == "time" for r in reports)


def _vint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _rar5_block(htype: int, body: bytes, extra: bytes = b"", data: bytes = b"") -> bytes:
    flags = (1 if extra else 0) | (2 if data else 0)
    fields = (_vint(htype) + _vint(flags) + (_vint(len(extra)) if extra else b"")
              + (_vint(len(data)) if data else b"") + body + extra)
    return b"\0\0\0\0" + _vint(len(fields)) + fields + data  # CRC32 left zero: not checked


def rar5_bytes(files: dict[str, bytes], encrypted: bool = False, headers_encrypted: bool = False) -> bytes:
    out = b"Rar!\x1a\x07\x01\x00"
    if headers_encrypted:
        return out + _rar5_block(4, _vint(0) + _vint(0) + b"\0" * 16)
    out += _rar5_block(1, _vint(0))
    for name, data in files.items():
        n = name.encode()
        body = _vint(0) + _vint(len(data)) + _vint(0) + _vint(0) + _vint(0) + _vint(len(n)) + n
        extra = b""
        if encrypted:
            rec = _vint(0x01) + b"\0" * 20  # file encryption record
            extra = _vint(len(rec)) + rec
        out += _rar5_block(2, body, extra, data)
    return out + _rar5_block(5, _vint(0))


def test_it_lists_names_in_rar5_without_reading_contents() -> None:
    rep = inspect_archive(rar5_bytes({"invoice.pdf.exe": b"x" * 10, "docs/readme.txt": b"y" * 5}), "rar", "a.rar")
    assert [(e.name, e.size) for e in rep.entries] == [("invoice.pdf.exe", 10), ("docs/readme.txt", 5)]
    assert rep.unsupported == "rar" and rep.unscannable and not rep.encrypted


def test_it_reports_encrypted_rar5_files_and_headers() -> None:
    rep = inspect_archive(rar5_bytes({"a.exe": b"x"}, encrypted=True), "rar")
    assert rep.encrypted and rep.entries[0].encrypted
    rep = inspect_archive(rar5_bytes({}, headers_encrypted=True), "rar")
    assert rep.encrypted and rep.entries == []


def test_it_lists_names_in_rar4() -> None:
    import base64

    from tests.services import shared_path

    p = shared_path("corpus", "av", "clamav-testfiles", "clam-v3.rar.b64")
    if not p.exists():
        pytest.skip("../shared/corpus/av/clamav-testfiles not present")
    rep = inspect_archive(base64.b64decode(p.read_bytes()), "rar", "clam-v3.rar")
    assert [(e.name, e.size) for e in rep.entries] == [("clam.exe", 544)] and rep.unsupported == "rar"


def test_it_never_raises_on_mutated_archives() -> None:
    import random

    rnd = random.Random(11)
    seeds = [("zip", zip_bytes({"a": b"hello" * 100, "b.zip": zip_bytes({"c": b"x"})})),
             ("tar", tar_bytes({"a": b"x" * 600})), ("gzip", gzip.compress(b"abc" * 1000)),
             ("xz", lzma.compress(b"abc" * 1000)), ("bzip2", bz2.compress(b"abc" * 1000)),
             ("7z", sevenzip_bytes({"a.txt": b"hello" * 50})), ("rar", rar5_bytes({"a.exe": b"x" * 50}))]
    for kind, data in seeds:
        for _ in range(150):
            b = bytearray(data)
            for _ in range(rnd.randint(1, 8)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            rep = inspect_archive(bytes(b), kind)
            assert rep.kind == kind


def _with_boot_signature(name: str, body: bytes) -> bytes:
    """A stored zip whose bytes 510-511 are 0x55AA: libmagic reads a "DOS/MBR boot sector"."""
    pad = bytearray(body + b"\0" * max(0, 600 - len(body)))
    offset = 510 - (30 + len(name))  # the local header, the name, then the stored bytes
    pad[offset], pad[offset + 1] = 0x55, 0xAA
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), bytes(pad))
    data = buf.getvalue()
    assert data[510:512] == b"\x55\xaa"
    return data


def test_a_zip_that_libmagic_takes_for_a_boot_sector_is_still_a_zip() -> None:
    data = _with_boot_signature("x.exe", EXE)
    assert detect_type(data) == "application/zip"
    rep = inspect_archive(data, "zip")
    assert [e.name for e in rep.entries] == ["x.exe"]
    assert rep.entries[0].detected_type == "application/x-dosexec"
    # nested: the inner zip is opened too, so the depth limit still holds
    nested = zip_bytes({"inner.zip": _with_boot_signature("x.exe", EXE)})
    rep = inspect_archive(nested, "zip")
    assert [e.name for e in rep.entries] == ["inner.zip", "x.exe"]


def test_zip_based_documents_keep_their_own_type() -> None:
    data = zip_bytes({"a.txt": b"x"})
    for kind in ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                 "application/vnd.oasis.opendocument.text", "application/java-archive", "application/epub+zip"):
        assert _archive_signature(data, kind) == kind
    for kind in ("application/octet-stream", "application/x-tar", "text/plain"):
        assert _archive_signature(data, kind) == "application/zip"
    gz = b"\x1f\x8b\x08" + bytes(507) + b"\x55\xaa" + bytes(100)
    assert _archive_signature(gz, "application/octet-stream") == "application/gzip"
    assert _archive_signature(gz, "application/x-gzip") == "application/x-gzip"
    assert detect_type(bytes(510) + b"\x55\xaa") == "application/octet-stream"  # a boot sector stays one
