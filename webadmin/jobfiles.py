"""The files of the web admin's background jobs (a scan, a Bayes training): one directory under
``GATEWAY_DATA_DIR`` per kind of job, a JSON state file per job named by a random token, and the
job's own files beside it (``<token>.<suffix>``), all removed ``keep_s`` after they were last
written. A state file names its owner: only that account reads it."""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


class JobFiles:
    def __init__(self, name: str, keep_s: float, suffixes: tuple[str, ...] = ()) -> None:
        self.name = name
        self.keep_s = keep_s
        self.suffixes = ("json", *suffixes)

    def dir(self) -> Path:
        from django.conf import settings

        d = Path(settings.GATEWAY.data_dir) / self.name
        d.mkdir(parents=True, exist_ok=True)
        return d

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(16)

    def load(self, token: str) -> dict[str, Any] | None:
        """A job's state as written, or None (no such file, unreadable, a token not ours)."""
        if not TOKEN.fullmatch(token or ""):
            return None
        try:
            doc = json.loads((self.dir() / f"{token}.json").read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def owned(self, token: str, owner: int) -> dict[str, Any] | None:
        """The state of ``owner``'s job, or None (no such job, expired, or another account's)."""
        doc = self.load(token)
        if doc is None or doc.get("owner") != owner:
            return None
        if time.time() - float(doc.get("started") or 0) > self.keep_s:
            return None
        return doc

    def write(self, token: str, doc: dict[str, Any]) -> None:
        """Replace a job's state at once (a reader sees the old file or the new one)."""
        d = self.dir()
        tmp = d / f".{token}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, d / f"{token}.json")

    def clean(self) -> None:
        """Remove the files of jobs older than ``keep_s``."""
        cutoff = time.time() - self.keep_s
        d = self.dir()
        for suffix in self.suffixes:
            for f in d.glob(f"*.{suffix}"):
                try:
                    if f.stat().st_mtime < cutoff:
                        f.unlink()
                except OSError:
                    pass
