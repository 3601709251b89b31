"""Minimal OLE2 compound files ([MS-CFB] version 3), written from scratch so that the macro
and encryption checks can be tested without storing Office documents in the repository.

Only what a reader needs is written: the FAT, the directory and streams of at least 4096 bytes
each (so they live in regular sectors and no mini stream is needed). Siblings form a
right-leaning binary search tree ordered as [MS-CFB] 2.6.4 says (length first, then upper case).
"""

from __future__ import annotations

import itertools
import struct
from typing import Union

SECTOR = 512
STREAM_BYTES = 4096
FREESECT, ENDOFCHAIN, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF

Tree = dict[str, Union[bytes, "Tree"]]


def _entry(name: str, kind: int, right: int = NOSTREAM, child: int = NOSTREAM,
           start: int = ENDOFCHAIN, size: int = 0) -> bytes:
    raw = name.encode("utf-16-le") + b"\0\0" if name else b""
    return (raw.ljust(64, b"\0") + struct.pack("<HBB3I", len(raw), kind, 1, NOSTREAM, right, child)
            + b"\0" * 36 + struct.pack("<IQ", start, size))  # CLSID, state bits, two FILETIMEs


def ole_file(tree: Tree) -> bytes:
    per = STREAM_BYTES // SECTOR
    entries: list[tuple[str, int, int, int, bytes]] = [("Root Entry", 5, NOSTREAM, NOSTREAM, b"")]
    streams: list[tuple[int, bytes]] = []  # (entry index, data)

    def add(children: Tree) -> int:
        ids = []
        for name in sorted(children, key=lambda n: (len(n), n.upper())):
            value = children[name]
            idx = len(entries)
            entries.append((name, 2 if isinstance(value, bytes) else 1, NOSTREAM, NOSTREAM, b""))
            ids.append(idx)
            if isinstance(value, bytes):
                streams.append((idx, value))
            else:
                child = add(value)
                n, k, r, _, d = entries[idx]
                entries[idx] = (n, k, r, child, d)
        for a, b in itertools.pairwise(ids):
            n, k, _, c, d = entries[a]
            entries[a] = (n, k, b, c, d)
        return ids[0] if ids else NOSTREAM

    root_child = add(tree)
    entries[0] = ("Root Entry", 5, NOSTREAM, root_child, b"")
    dir_sectors = -(-len(entries) * 128 // SECTOR)
    first_stream = 1 + dir_sectors
    start_of = {idx: first_stream + i * per for i, (idx, _) in enumerate(streams)}
    fat = [FATSECT] + [*range(2, 1 + dir_sectors), ENDOFCHAIN]
    for idx, _ in streams:
        s = start_of[idx]
        fat += [*range(s + 1, s + per), ENDOFCHAIN]
    assert len(fat) <= SECTOR // 4, "too many streams for one FAT sector"
    fat += [FREESECT] * (SECTOR // 4 - len(fat))
    directory = b"".join(
        _entry(n, k, r, c, start_of.get(i, ENDOFCHAIN), STREAM_BYTES if i in start_of else 0)
        for i, (n, k, r, c, _) in enumerate(entries))
    directory = directory.ljust(dir_sectors * SECTOR, b"\0")
    header = (bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
              + struct.pack("<9I", 0, 1, 1, 0, STREAM_BYTES, ENDOFCHAIN, 0, ENDOFCHAIN, 0)
              + struct.pack("<I", 0) + struct.pack("<I", FREESECT) * 108)
    body = struct.pack(f"<{SECTOR // 4}I", *fat) + directory
    for _, data in streams:
        assert len(data) <= STREAM_BYTES
        body += data.ljust(STREAM_BYTES, b"\0")
    return header + body


def vba_project_ole() -> bytes:
    """The storage layout of a VBA project ([MS-OVBA] 2.2): PROJECT, VBA/dir, VBA/_VBA_PROJECT."""
    return ole_file({
        "PROJECT": b'ID="{00000000-0000-0000-0000-000000000000}"\r\nModule=Module1\r\n',
        "VBA": {"dir": b"\x01\x00", "_VBA_PROJECT": b"\xcc\x61\xff\xff\x00"},
    })


def encrypted_office_ole() -> bytes:
    """The layout of a password-protected OOXML document ([MS-OFFCRYPTO] 2.3.4)."""
    return ole_file({"EncryptionInfo": b"\x04\x00\x04\x00\x40\x00\x00\x00", "EncryptedPackage": b"\x10" * 64})
