"""Durable quarantine storage on the filesystem (the default backend).

A quarantined message is two files under ``<root>/YYYY/MM/DD/``: ``<qid>.eml`` (the bytes as
received) and ``<qid>.json`` (metadata). Both are written to a temporary name, fsynced, renamed
into place, and the directory is fsynced, all before the milter answers: a crash at any point
leaves either no trace (and the client gets 4xx) or a complete, readable entry. The database
rows are created later from the message-log journal (and by ``quarantine rescan``), so the
milter never waits on a database.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

QID_RE = re.compile(r"^[0-9a-f]{32}$")


class QuarantineStorageError(OSError):
    pass



def _make_dirs_durably(root: Path, relative: str) -> None:
    """``root/relative`` made one level at a time; each level made here is synced into its
    parent's directory entries, so that a crash after the first message of a day cannot lose the
    new directory, and with it the only copy (a journaling file system usually keeps it; POSIX
    does not promise it)."""
    d = root
    d.mkdir(parents=True, exist_ok=True)
    for part in relative.split("/"):
        parent, d = d, d / part
        if not d.is_dir():
            d.mkdir(exist_ok=True)
            _fsync_dir(parent)

class FilesystemQuarantineStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        """Store durably; return the metadata completed with ``qid`` and ``path``."""
        qid = uuid.uuid4().hex
        day = time.strftime("%Y/%m/%d", time.gmtime(meta.get("created", time.time())))
        d = self.root / day
        try:
            _make_dirs_durably(self.root, day)
            meta = {**meta, "qid": qid, "path": f"{day}/{qid}.eml"}
            _write_durably(d / f"{qid}.eml", raw)
            _write_durably(d / f"{qid}.json", json.dumps(meta, sort_keys=True).encode())
            _fsync_dir(d)
        except OSError as e:
            raise QuarantineStorageError(f"cannot store quarantined message: {e}") from e
        return meta

    def path_for(self, relpath: str) -> Path:
        """Resolve a stored relative path, refusing anything outside the store."""
        p = (self.root / relpath).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError(f"path {relpath!r} is outside the quarantine store")
        return p

    def read(self, relpath: str) -> bytes:
        return self.path_for(relpath).read_bytes()

    def delete(self, relpath: str) -> None:
        p = self.path_for(relpath)
        for f in (p, p.with_suffix(".json")):
            try:
                f.unlink()
            except FileNotFoundError:
                pass

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every stored entry's metadata (for rebuilding the database rows)."""
        for meta_file in sorted(self.root.glob("*/*/*/*.json")):
            try:
                yield json.loads(meta_file.read_text())
            except (OSError, ValueError):
                continue


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
