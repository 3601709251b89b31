"""A minimal OLE2 compound file ([MS-CFB] version 3) with the storage layout of a VBA project
([MS-OVBA] 2.2: ``PROJECT``, ``VBA/dir``, ``VBA/_VBA_PROJECT``), written from scratch so that
the macro check can be tested without storing a macro document in the repository.

Only what a reader needs is written: one FAT sector, the directory, and streams of at least
4096 bytes (so they live in regular sectors and no mini stream is needed).
"""

from __future__ import annotations

import struct

SECTOR = 512
FREESECT, ENDOFCHAIN, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _entry(name: str, kind: int, left: int = NOSTREAM, right: int = NOSTREAM, child: int = NOSTREAM,
           start: int = ENDOFCHAIN, size: int = 0) -> bytes:
    raw = name.encode("utf-16-le") + b"\0\0" if name else b""
    return (raw.ljust(64, b"\0") + struct.pack("<HBB3I", len(raw), kind, 1, left, right, child)
            + b"\0" * 16 + b"\0" * 4 + b"\0" * 16 + struct.pack("<IQ", start, size))


def vba_project_ole(stream_size: int = 4096) -> bytes:
    streams = [("PROJECT", b'ID="{00000000-0000-0000-0000-000000000000}"\r\nModule=Module1\r\n'),
               ("dir", b"\x01\x00"), ("_VBA_PROJECT", b"\xcc\x61\xff\xff\x00")]
    per = -(-stream_size // SECTOR)
    first_stream_sector = 3  # 0: FAT, 1-2: directory
    starts = [first_stream_sector + i * per for i in range(len(streams))]
    total = first_stream_sector + per * len(streams)
    fat = [FATSECT, 2, ENDOFCHAIN]
    for s in starts:
        fat += list(range(s + 1, s + per)) + [ENDOFCHAIN]
    fat += [FREESECT] * (SECTOR // 4 - len(fat))
    # tree: Root -> PROJECT (left: VBA); VBA -> dir (right: _VBA_PROJECT); names compare by length first
    entries = [
        _entry("Root Entry", 5, child=1),
        _entry("PROJECT", 2, left=2, start=starts[0], size=stream_size),
        _entry("VBA", 1, child=3),
        _entry("dir", 2, right=4, start=starts[1], size=stream_size),
        _entry("_VBA_PROJECT", 2, start=starts[2], size=stream_size),
    ]
    directory = b"".join(entries) + _entry("", 0) * 3
    header = (bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
              + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, ENDOFCHAIN, 0, ENDOFCHAIN, 0)
              + struct.pack("<I", 0) + struct.pack("<I", FREESECT) * 108)
    body = struct.pack(f"<{SECTOR // 4}I", *fat) + directory
    for _, data in streams:
        body += data.ljust(per * SECTOR, b"\0")
    assert len(body) == total * SECTOR - 0 and len(header) == SECTOR
    return header + body
