"""The message-log journal: records leave the hot path as one append, reach the database in
batches.

The milter appends each record as one JSON line to its own journal segment (a single
``write(2)`` on an ``O_APPEND`` file: microseconds, no database). A background thread fsyncs
the segment once a second. The :class:`JournalIngestor` (a thread in the milter daemon, or
``manage.py msglog ingest``) reads complete lines past a checkpoint, hands them to the
database writer in batches and only then advances the checkpoint. The writer is idempotent
(unique ``log_id``), so a crash of the writer or of the database between the write and the
checkpoint replays the batch without duplicates: no committed outcome is lost.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_milter import jsonio

log = logging.getLogger("bulwark.msglog")

SEGMENT_MAX_BYTES = 16 * 1024 * 1024
SEGMENT_MAX_AGE_S = 300.0
BATCH_SIZE = 500


class JournalLogSink:
    """Append-only JSON-lines journal, one open segment per process."""

    def __init__(self, directory: Path, fsync_interval: float = 1.0) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd = -1
        self._path: Path | None = None
        self._opened = 0.0
        self._size = 0
        self._dirty = False
        self._stop = threading.Event()
        self._fsync_interval = fsync_interval
        self._thread: threading.Thread | None = None

    def _open_segment(self) -> None:
        name = f"seg-{time.time_ns()}-{os.getpid()}.jsonl.open"
        self._path = self.dir / name
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._opened = time.monotonic()
        self._size = 0

    def _close_segment(self) -> None:
        if self._fd < 0 or self._path is None:
            return
        os.fsync(self._fd)
        os.close(self._fd)
        os.replace(self._path, self._path.with_suffix(""))  # drop ".open": closed, ready to delete once read
        self._fd = -1
        self._path = None

    def emit(self, record: dict[str, Any]) -> None:
        line = jsonio.dumps(record) + b"\n"
        with self._lock:
            if self._fd >= 0 and (self._size > SEGMENT_MAX_BYTES or time.monotonic() - self._opened > SEGMENT_MAX_AGE_S):
                self._close_segment()
            if self._fd < 0:
                self._open_segment()
            os.write(self._fd, line)
            self._size += len(line)
            self._dirty = True

    def flush(self) -> None:
        with self._lock:
            if self._fd >= 0 and self._dirty:
                os.fsync(self._fd)
                self._dirty = False

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self._fsync_interval):
                try:
                    self.flush()
                except OSError:
                    log.exception("journal fsync failed")

        self._thread = threading.Thread(target=loop, name="msglog-fsync", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._close_segment()


BatchWriter = Callable[[list[dict[str, Any]]], None]


class JournalIngestor:
    """Moves journal records into the database in batches; one ingestor per journal dir at a
    time (file lock), safe to run in every milter process and from the CLI."""

    def __init__(self, directory: Path, writer: BatchWriter) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.writer = writer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoint_file = self.dir / "checkpoint.json"

    def _load_checkpoint(self) -> dict[str, int]:
        try:
            data = json.loads(self.checkpoint_file.read_text())
            return {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError):
            return {}

    def _save_checkpoint(self, cp: dict[str, int]) -> None:
        tmp = self.checkpoint_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cp))
        os.replace(tmp, self.checkpoint_file)

    def run_once(self, wait_s: float = 0.0) -> int:
        """Ingest every complete record not yet written; returns how many were written.

        Another ingester holding the lock means the work is being done: return at once, or
        (``wait_s``, for a caller about to read the log) wait for it and ingest what is left."""
        lock_path = self.dir / "ingest.lock"
        deadline = time.monotonic() + wait_s
        with open(lock_path, "a") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return 0
                    time.sleep(0.05)
            try:
                return self._ingest()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _ingest(self) -> int:
        cp = self._load_checkpoint()
        total = 0
        segments = sorted(self.dir.glob("seg-*.jsonl*"), key=lambda p: p.name)
        for seg in segments:
            key = seg.name.removesuffix(".open")
            offset = cp.get(key, 0)
            try:
                with open(seg, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                continue  # renamed between glob and open: picked up next round
            end = data.rfind(b"\n") + 1  # only complete lines
            records: list[dict[str, Any]] = []
            pos = 0
            while pos < end:
                nl = data.index(b"\n", pos)
                line = data[pos:nl]
                pos = nl + 1
                try:
                    records.append(jsonio.loads(line))
                except ValueError:
                    log.error("skipping unreadable journal line in %s at offset %d", seg.name, offset + pos)
                if len(records) >= BATCH_SIZE:
                    self.writer(records)
                    total += len(records)
                    records = []
                    cp[key] = offset + pos
                    self._save_checkpoint(cp)
            if records:
                self.writer(records)
                total += len(records)
            if end:
                cp[key] = offset + end
                self._save_checkpoint(cp)
            if not seg.name.endswith(".open") and cp.get(key, 0) >= seg.stat().st_size:
                seg.unlink()
                cp.pop(key, None)
                self._save_checkpoint(cp)
        return total

    def start(self, interval: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.run_once()
                except Exception:
                    log.exception("message log ingestion failed; will retry")

        self._thread = threading.Thread(target=loop, name="msglog-ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.run_once()
        except Exception:
            log.exception("final message log ingestion failed; records stay in the journal")
