"""Bounded, in-memory archive listing: zip (PKWARE APPNOTE), 7z, tar (POSIX.1-2001), gzip
(RFC 1952), bzip2 and xz, nested up to a depth limit.

Archives are never extracted to disk and member names never become paths: members are read
into memory, bounded by the limits below, only to learn their true type and to look inside
nested archives. Any limit hit (ratio, total size, entry count, depth, time), any encrypted or
corrupt container and any format we cannot open (RAR) makes the report *unscannable*: callers
must never treat such content as clean (docs/decisions/0032-archive-bounds.md).
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from gateway_milter.mime.detect import archive_kind, detect_type

CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_depth: int = 5  # archives inside archives (the attachment itself is depth 0)
    max_entries: int = 2000  # members over the whole tree
    max_total_bytes: int = 100 * 1024 * 1024  # uncompressed bytes over the whole tree
    max_ratio: float = 100.0  # uncompressed / compressed, for members over ratio_min_bytes
    ratio_min_bytes: int = 1024 * 1024
    time_budget_s: float = 5.0


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One member. ``chain`` is the list of container names down to this member (display only)."""

    name: str
    chain: tuple[str, ...]
    size: int
    depth: int
    detected_type: str = ""
    encrypted: bool = False
    has_macros: bool = False


@dataclass(slots=True)
class ArchiveReport:
    kind: str
    entries: list[ArchiveEntry] = field(default_factory=list)
    encrypted: bool = False
    limit: str | None = None  # which bound was hit: ratio, total_size, entries, depth, time
    corrupt: str | None = None
    unsupported: str | None = None
    ms: float = 0.0

    @property
    def unscannable(self) -> bool:
        return bool(self.encrypted or self.limit or self.corrupt or self.unsupported)

    @property
    def reasons(self) -> list[str]:
        out = []
        if self.encrypted:
            out.append("encrypted")
        if self.limit:
            out.append(f"limit:{self.limit}")
        if self.corrupt:
            out.append(f"corrupt:{self.corrupt}")
        if self.unsupported:
            out.append(f"unsupported:{self.unsupported}")
        return out


class _LimitHit(Exception):
    def __init__(self, which: str) -> None:
        super().__init__(which)
        self.which = which


MacroProbe = Callable[[bytes, str], bool]


class _Walk:
    def __init__(self, limits: ArchiveLimits, report: ArchiveReport, macro_probe: MacroProbe | None,
                 time_budget_s: float) -> None:
        self.limits = limits
        self.report = report
        self.deadline = time.monotonic() + time_budget_s
        self.total = 0
        self.count = 0
        self.macro_probe = macro_probe

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _LimitHit("time")

    def counted(self, n: int = 1) -> None:
        self.count += n
        if self.count > self.limits.max_entries:
            raise _LimitHit("entries")

    def grow(self, n: int) -> None:
        self.total += n
        if self.total > self.limits.max_total_bytes:
            raise _LimitHit("total_size")

    def check_ratio(self, size: int, compressed: int) -> None:
        if size >= self.limits.ratio_min_bytes and size > self.limits.max_ratio * max(compressed, 1):
            raise _LimitHit("ratio")

    # -- members ------------------------------------------------------------------------------
    def member(self, name: str, chain: tuple[str, ...], data: bytes, depth: int, encrypted: bool = False) -> None:
        detected = detect_type(data) if data else ""
        macros = False
        if self.macro_probe is not None and data:
            macros = self.macro_probe(data, detected)
        self.report.entries.append(ArchiveEntry(name, chain, len(data), depth, detected, encrypted, macros))
        kind = archive_kind(detected)
        if kind is not None:
            if depth + 1 > self.limits.max_depth:
                raise _LimitHit("depth")
            self.container(kind, data, chain + (name,), depth + 1)

    def container(self, kind: str, data: bytes, chain: tuple[str, ...], depth: int) -> None:
        self.tick()
        if kind == "zip":
            self.zip(data, chain, depth)
        elif kind == "tar":
            self.tar(data, chain, depth)
        elif kind in ("gzip", "bzip2", "xz"):
            self.stream(kind, data, chain, depth)
        elif kind == "7z":
            self.sevenzip(data, chain, depth)
        elif kind == "rar":
            self.rar(data, chain, depth)
        else:
            self.report.unsupported = kind

    def read_bounded(self, f: IO[bytes], declared: int, compressed: int) -> bytes:
        buf = bytearray()
        read = f.read
        while True:
            self.tick()
            chunk = read(CHUNK)
            if not chunk:
                break
            buf += chunk
            self.grow(len(chunk))
            # the declared size may lie: judge the ratio on what actually came out
            self.check_ratio(len(buf), compressed)
            if len(buf) > max(declared, 0) + CHUNK and declared >= 0:
                raise _LimitHit("ratio")
        return bytes(buf)

    def zip(self, data: bytes, chain: tuple[str, ...], depth: int) -> None:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            infos = zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            self.report.corrupt = f"zip: {e}"[:200]
            return
        self.counted(len(infos))
        for info in infos:
            self.tick()
            name = info.filename
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                self.report.encrypted = True
                self.report.entries.append(ArchiveEntry(name, chain, info.file_size, depth, "", True))
                continue
            self.check_ratio(info.file_size, info.compress_size)
            try:
                with zf.open(info) as f:
                    content = self.read_bounded(f, info.file_size, info.compress_size)
            except _LimitHit:
                raise
            except NotImplementedError as e:
                self.report.unsupported = f"zip: {e}"[:200]  # e.g. deflate64, bzip2-in-zip variants
                continue
            except (zipfile.BadZipFile, RuntimeError, OSError, ValueError, EOFError,
                    zlib.error, lzma.LZMAError) as e:
                self.report.corrupt = f"zip member: {e}"[:200]
                continue
            self.member(name, chain, content, depth)

    def tar(self, data: bytes, chain: tuple[str, ...], depth: int) -> None:
        try:
            tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 - closed below
        except (tarfile.TarError, OSError, ValueError, EOFError) as e:
            self.report.corrupt = f"tar: {e}"[:200]
            return
        try:
            self._tar_members(tf, chain, depth)
        finally:
            tf.close()

    def _tar_members(self, tf: tarfile.TarFile, chain: tuple[str, ...], depth: int) -> None:
        try:
            while True:
                self.tick()
                m = tf.next()
                if m is None:
                    break
                self.counted()
                if not m.isfile():
                    continue
                f = tf.extractfile(m)
                content = self.read_bounded(f, m.size, m.size) if f is not None else b""
                self.member(m.name, chain, content, depth)
        except (tarfile.TarError, OSError, ValueError, EOFError) as e:
            self.report.corrupt = f"tar: {e}"[:200]

    def stream(self, kind: str, data: bytes, chain: tuple[str, ...], depth: int) -> None:
        zdec = zlib.decompressobj(wbits=47) if kind == "gzip" else None  # 32 + 15: gzip or zlib header
        odec: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        if kind == "bzip2":
            odec = bz2.BZ2Decompressor()
        elif kind == "xz":
            odec = lzma.LZMADecompressor()
        out = bytearray()
        eof = False
        try:
            pending = data
            while True:
                self.tick()
                if zdec is not None:
                    chunk = zdec.decompress(pending, CHUNK)
                    pending = zdec.unconsumed_tail
                    eof = zdec.eof
                    done = eof or (not pending and not chunk)
                else:
                    assert odec is not None
                    chunk = odec.decompress(pending, CHUNK)
                    pending = b""
                    eof = odec.eof
                    done = eof or (not chunk and odec.needs_input)
                out += chunk
                self.grow(len(chunk))
                self.check_ratio(len(out), len(data))
                if done:
                    if not eof:
                        self.report.corrupt = f"{kind}: truncated stream"
                    break
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as e:
            self.report.corrupt = f"{kind}: {e}"[:200]
            return
        self.counted()
        inner = chain[-1] if chain else kind
        for suffix, replacement in ((".tgz", ".tar"), (".tbz2", ".tar"), (".txz", ".tar"),
                                    (".gz", ""), (".bz2", ""), (".xz", "")):
            if inner.lower().endswith(suffix):
                inner = inner[: -len(suffix)] + replacement
                break
        self.member(inner, chain, bytes(out), depth)

    def rar(self, data: bytes, chain: tuple[str, ...], depth: int) -> None:
        # names and sizes only: clamd on Debian main has no unrar (docs/decisions/0033)
        self.report.unsupported = "rar"
        try:
            entries, headers_encrypted = rar_entries(data)
        except (ValueError, struct.error, IndexError) as e:
            self.report.corrupt = f"rar: {e}"[:200]
            return
        if headers_encrypted:
            self.report.encrypted = True
        self.counted(len(entries))
        for name, size, encrypted in entries:
            if encrypted:
                self.report.encrypted = True
            self.report.entries.append(ArchiveEntry(name, chain, size, depth, "", encrypted))

    def sevenzip(self, data: bytes, chain: tuple[str, ...], depth: int) -> None:
        try:
            import py7zr
            import py7zr.exceptions
            import py7zr.io
        except ImportError:
            self.report.unsupported = "7z"
            return
        try:
            z = py7zr.SevenZipFile(io.BytesIO(data))
        except py7zr.exceptions.PasswordRequired:
            self.report.encrypted = True  # names are encrypted too (7z -mhe)
            return
        except Exception as e:  # noqa: BLE001 - py7zr raises many kinds on bad input
            self.report.corrupt = f"7z: {e}"[:200]
            return
        try:
            infos = [i for i in z.list() if not i.is_directory]
            self.counted(len(infos))
            total = sum(int(i.uncompressed or 0) for i in infos)
            self.check_ratio(total, len(data))
            if self.total + total > self.limits.max_total_bytes:
                raise _LimitHit("total_size")
            if z.needs_password():
                self.report.encrypted = True
                for i in infos:
                    self.report.entries.append(ArchiveEntry(i.filename, chain, int(i.uncompressed or 0), depth, "", True))
                return
            factory = py7zr.io.BytesIOFactory(self.limits.max_total_bytes)
            z.extract(factory=factory)  # in memory: the factory gets every member, no path is used
        except _LimitHit:
            raise
        except Exception as e:  # noqa: BLE001
            self.report.corrupt = f"7z: {e}"[:200]
            return
        finally:
            z.close()
        for i in infos:
            product = factory.products.get(i.filename)
            content = b""
            if product is not None:
                product.seek(0)
                content = product.read()
            self.grow(len(content))
            self.member(i.filename, chain, content, depth)


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    """RAR5 variable-length integer: 7 bits per byte, high bit = more."""
    value = shift = 0
    for _ in range(10):
        if pos >= len(data):
            raise ValueError("truncated vint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos
    raise ValueError("vint too long")


def rar_entries(data: bytes) -> tuple[list[tuple[str, int, bool]], bool]:
    """(name, unpacked size, encrypted) of each file in a RAR 1.5-4 or RAR 5 archive, read
    from the block headers only (no unrar on Debian main: contents stay unreadable), and
    whether the headers themselves are encrypted (then no name is visible)."""
    out: list[tuple[str, int, bool]] = []
    if data.startswith(b"Rar!\x1a\x07\x01\x00"):
        pos = 8
        while pos < len(data) and len(out) <= 100_000:
            size, p = _vint(data, pos + 4)
            end = p + size
            htype, p = _vint(data, p)
            hflags, p = _vint(data, p)
            extra = data_size = 0
            if hflags & 0x01:
                extra, p = _vint(data, p)
            if hflags & 0x02:
                data_size, p = _vint(data, p)
            if htype == 4:  # archive encryption header: everything after it is encrypted
                return out, True
            if htype == 2:
                fflags, p = _vint(data, p)
                unpacked, p = _vint(data, p)
                _, p = _vint(data, p)  # attributes
                p += 4 if fflags & 0x02 else 0
                p += 4 if fflags & 0x04 else 0
                _, p = _vint(data, p)  # compression
                _, p = _vint(data, p)  # host OS
                nlen, p = _vint(data, p)
                name = data[p:p + nlen].decode("utf-8", "replace")
                extra_area = data[end - extra:end] if extra else b""
                encrypted = _rar5_has_record(extra_area, 0x01)
                out.append((name, unpacked, encrypted))
            if htype == 5 or end <= pos:
                break
            pos = end + data_size
        return out, False
    if data.startswith(b"Rar!\x1a\x07\x00"):
        pos = 7
        while pos + 7 <= len(data) and len(out) <= 100_000:
            htype = data[pos + 2]
            flags, hsize = struct.unpack_from("<HH", data, pos + 3)
            if hsize < 7:
                break
            add = struct.unpack_from("<I", data, pos + 7)[0] if flags & 0x8000 and htype != 0x74 else 0
            if htype == 0x73 and flags & 0x0080:
                return out, True
            if htype == 0x74:
                pack, unp = struct.unpack_from("<II", data, pos + 7)
                nsize = struct.unpack_from("<H", data, pos + 26)[0]
                npos = pos + 32 + (8 if flags & 0x100 else 0)
                if flags & 0x100:
                    hp, hu = struct.unpack_from("<II", data, pos + 32)
                    pack, unp = pack | hp << 32, unp | hu << 32
                raw = data[npos:npos + nsize]
                if flags & 0x200 and b"\0" in raw:
                    raw = raw.split(b"\0", 1)[0]  # the ASCII form before the packed Unicode one
                out.append((raw.decode("utf-8", "replace"), unp, bool(flags & 0x04)))
                add = pack
            if htype == 0x7B:
                break
            pos += hsize + add
        return out, False
    raise ValueError("not a RAR archive")


def _rar5_has_record(extra: bytes, record_type: int) -> bool:
    pos = 0
    try:
        while pos < len(extra):
            size, p = _vint(extra, pos)
            rtype, _ = _vint(extra, p)
            if rtype == record_type:
                return True
            pos = p + size
    except ValueError:
        return False
    return False


def inspect_archive(data: bytes, kind: str, name: str = "", limits: ArchiveLimits | None = None,
                    macro_probe: MacroProbe | None = None, time_budget_s: float | None = None) -> ArchiveReport:
    """List an archive (recursively) within ``limits``. Never raises on bad input.

    ``time_budget_s`` lowers ``limits.time_budget_s`` (the caller's budget for the message)."""
    limits = limits or ArchiveLimits()
    report = ArchiveReport(kind)
    t0 = time.perf_counter()
    budget = limits.time_budget_s if time_budget_s is None else min(limits.time_budget_s, time_budget_s)
    walk = _Walk(limits, report, macro_probe, budget)
    try:
        walk.container(kind, data, (name or kind,), 0)
    except _LimitHit as e:
        report.limit = e.which
    except RecursionError:
        report.limit = "depth"
    except Exception as e:  # noqa: BLE001 - a parser bug on hostile input: unscannable, never clean
        report.corrupt = f"{type(e).__name__}: {e}"[:200]
    report.ms = round((time.perf_counter() - t0) * 1000, 3)
    return report
