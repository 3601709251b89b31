"""Embedded state store: one SQLite database in WAL mode, shared by the processes of one host.

WAL lets readers proceed while one writer commits; ``busy_timeout`` serialises writers of
several milter processes. Each thread keeps its own connection (sqlite3 connections must not
be shared across threads without a lock, and libmilter runs callbacks on many threads).
Expired rows are hidden on read and purged now and then on write.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway_milter.store import StoreError, check_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hc (key TEXT NOT NULL, field TEXT NOT NULL, value INTEGER NOT NULL,
                               PRIMARY KEY (key, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hexp (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
"""
# a hash's fields in the order asked, 0 (NULL) for those it lacks; json_each is built into
# SQLite since 3.38 (Debian 12: 3.40)
_READ_FIELDS = ("SELECT hc.value FROM json_each(?) AS j LEFT JOIN hc ON hc.key = ? AND hc.field = j.value "
                "ORDER BY j.id")
PURGE_EVERY = 500


MMAP_BYTES = 256 * 1024 * 1024


class SqliteStore:
    # Bayes keeps the counter fields its classifications read for a few seconds
    # (antispam/bayes.py FieldCache): this store is outside the process
    cache_reads = True

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.now = clock
        self._local = threading.local()
        self._writes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db().executescript(SCHEMA)  # executescript manages its own transaction
        except sqlite3.Error as e:
            raise StoreError(f"cannot initialise {self.path}: {e}") from e
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass

    # -- plumbing -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=True)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA busy_timeout=10000")
                # reads through a memory map instead of a read() per page: a Bayes classification
                # (~900 counter fields) 1.50 -> 1.17 ms (docs/decisions/0056-token-model.md); the
                # pages are the OS's, shared by every connection, not a cache per thread
                db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            except sqlite3.Error as e:
                raise StoreError(f"cannot open {self.path}: {e}") from e
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection, write: bool) -> None:
            self.db, self.write = db, write

        def __enter__(self) -> sqlite3.Connection:
            try:
                self.db.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
            except sqlite3.Error as e:
                raise StoreError(str(e)) from e
            return self.db

        def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
            try:
                self.db.execute("COMMIT" if et is None else "ROLLBACK")
            except sqlite3.Error as e:
                raise StoreError(str(e)) from e
            if isinstance(ev, sqlite3.Error):
                raise StoreError(str(ev)) from ev

    def _tx(self, write: bool = True) -> SqliteStore._Tx:
        if write:
            self._writes += 1
        return SqliteStore._Tx(self._db(), write)

    def _maybe_purge(self, db: sqlite3.Connection, now: float) -> None:
        if self._writes % PURGE_EVERY == 0 or random.random() < 1 / PURGE_EVERY:
            db.execute("DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?", (now,))
            for (k,) in db.execute("SELECT key FROM hexp WHERE expires <= ?", (now,)).fetchall():
                db.execute("DELETE FROM hc WHERE key = ?", (k,))
                db.execute("DELETE FROM hexp WHERE key = ?", (k,))

    # -- key/value ------------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        check_key(key)
        try:
            row = self._db().execute("SELECT value FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)",
                                     (key, self.now())).fetchone()
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
        return row[0] if row else None

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        check_key(key)
        now = self.now()
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO kv(key, value, expires) VALUES (?, ?, ?)",
                       (key, str(value), now + ttl if ttl else None))
            self._maybe_purge(db, now)

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        check_key(key)
        now = self.now()
        with self._tx() as db:
            db.execute("DELETE FROM kv WHERE key = ? AND expires IS NOT NULL AND expires <= ?", (key, now))
            cur = db.execute("INSERT OR IGNORE INTO kv(key, value, expires) VALUES (?, ?, ?)",
                             (key, str(value), now + ttl if ttl else None))
            return cur.rowcount == 1

    def delete(self, *keys: str) -> int:
        n = 0
        now = self.now()
        with self._tx() as db:
            for k in keys:
                check_key(k)
                n += db.execute("DELETE FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)",
                                (k, now)).rowcount
                db.execute("DELETE FROM kv WHERE key = ?", (k,))
                had = db.execute("DELETE FROM hc WHERE key = ?", (k,)).rowcount
                db.execute("DELETE FROM hexp WHERE key = ?", (k,))
                n += 1 if had else 0
        return n

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        check_key(key)
        now = self.now()
        with self._tx() as db:
            row = db.execute("SELECT value, expires FROM kv WHERE key = ?", (key,)).fetchone()
            if row is None or (row[1] is not None and row[1] <= now):
                value, exp = amount, (now + ttl if ttl else None)
            else:
                try:
                    value = int(row[0]) + amount
                except ValueError:
                    raise StoreError(f"value of {key!r} is not an integer") from None
                exp = row[1]
            db.execute("INSERT OR REPLACE INTO kv(key, value, expires) VALUES (?, ?, ?)", (key, str(value), exp))
            self._maybe_purge(db, now)
            return value

    def ttl(self, key: str) -> float | None:
        check_key(key)
        row = self._db().execute("SELECT expires FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)",
                                 (key, self.now())).fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - self.now())

    def expire(self, keys: Sequence[str], ttl: float) -> int:
        if not ttl or ttl <= 0:
            raise ValueError("expire needs a positive ttl")
        now = self.now()
        n = 0
        with self._tx() as db:
            for k in keys:
                check_key(k)
                n += db.execute("UPDATE kv SET expires = ? WHERE key = ? AND (expires IS NULL OR expires > ?)",
                                (now + ttl, k, now)).rowcount
                exp = db.execute("SELECT expires FROM hexp WHERE key = ?", (k,)).fetchone()
                if (exp is None or exp[0] > now) and db.execute(
                        "SELECT 1 FROM hc WHERE key = ? LIMIT 1", (k,)).fetchone() is not None:
                    db.execute("INSERT OR REPLACE INTO hexp(key, expires) VALUES (?, ?)", (k, now + ttl))
                    n += 1
        return n

    # -- counter hashes -------------------------------------------------------------------------
    def counters(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[int]]:
        now = self.now()
        out: list[list[int]] = []
        try:
            with self._tx(write=False) as db:
                for key, fields in requests:
                    check_key(key)
                    exp = db.execute("SELECT expires FROM hexp WHERE key = ?", (key,)).fetchone()
                    if exp is not None and exp[0] <= now:
                        out.append([0] * len(fields))
                        continue
                    if not fields:
                        out.append([])
                        continue
                    # the fields as one JSON array, joined in SQLite, the values in their order,
                    # instead of SQL text with up to 500 placeholders made and bound each time: a
                    # Bayes classification 2.1-3.6 -> 1.26-1.36 ms (docs/decisions/0059-background-autolearn.md)
                    rows = db.execute(_READ_FIELDS, (json.dumps(fields), key)).fetchall()
                    out.append([v or 0 for (v,) in rows])
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
        return out

    def add_counters(self, updates: Iterable[tuple[str, Mapping[str, int]]], ttl: float | None = None) -> None:
        now = self.now()
        with self._tx() as db:
            for key, deltas in updates:
                check_key(key)
                exp = db.execute("SELECT expires FROM hexp WHERE key = ?", (key,)).fetchone()
                if exp is not None and exp[0] <= now:
                    db.execute("DELETE FROM hc WHERE key = ?", (key,))
                    db.execute("DELETE FROM hexp WHERE key = ?", (key,))
                db.executemany(
                    "INSERT INTO hc(key, field, value) VALUES (?, ?, ?) "
                    "ON CONFLICT(key, field) DO UPDATE SET value = value + excluded.value",
                    [(key, f, int(d)) for f, d in deltas.items()])
                dropped = [(key, f) for f, d in deltas.items() if d < 0]
                if dropped:  # only the fields that went down can have reached 0 (not a scan of the hash)
                    db.executemany("DELETE FROM hc WHERE key = ? AND field = ? AND value <= 0", dropped)
                if ttl:
                    db.execute("INSERT OR REPLACE INTO hexp(key, expires) VALUES (?, ?)", (key, now + ttl))
            self._maybe_purge(db, now)

    def counter_fields(self, key: str) -> int:
        check_key(key)
        row = self._db().execute("SELECT count(*) FROM hc WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def scan_keys(self, prefix: str, limit: int = 1000) -> list[str]:
        esc = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        db = self._db()
        now = self.now()
        keys = [r[0] for r in db.execute(
            "SELECT key FROM kv WHERE key LIKE ? ESCAPE '\\' AND (expires IS NULL OR expires > ?) LIMIT ?",
            (esc + "%", now, limit))]
        keys += [r[0] for r in db.execute(
            "SELECT DISTINCT key FROM hc WHERE key LIKE ? ESCAPE '\\' LIMIT ?", (esc + "%", limit))]
        return sorted(set(keys))[:limit]

    def ping(self) -> bool:
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True
