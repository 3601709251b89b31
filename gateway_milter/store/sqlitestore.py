"""Embedded state store: one SQLite database in WAL mode, shared by the processes of one host.

WAL lets readers proceed while one writer commits; ``busy_timeout`` serialises writers of
several milter processes. Each thread keeps its own connection (sqlite3 connections must not
be shared across threads without a lock, and libmilter runs callbacks on many threads).

A write waits for another writer's lock at most ``write_wait`` seconds (1 s: the message path,
where a lock held by a long job must become a quick StoreError and the layer's fail mode, not
a stalled RCPT), or as long as the thread's :func:`~gateway_milter.store.batch_writes` block
says (``manage.py bayes``, the background learner). The wait is the connection's
``busy_timeout``, set again only when the thread's bound changes (one connection per thread, so
a batch thread's long wait never leaks into a connection thread).

Expired rows are hidden on read and purged now and then on write, a bounded chunk at a time
found through an index on the expiry (never a scan of the table under the write lock).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway_milter.store import (BATCH_WRITE_WAIT_S, MESSAGE_PATH_WRITE_WAIT_S, GuardedUpdate, StoreError,
                                  batch_writes, check_key, write_wait)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hc (key TEXT NOT NULL, field TEXT NOT NULL, value INTEGER NOT NULL,
                               PRIMARY KEY (key, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hexp (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires) WHERE expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS hexp_expires ON hexp(expires);
"""
# a hash's fields in the order asked, 0 (NULL) for those it lacks; json_each is built into
# SQLite since 3.38 (Debian 12: 3.40)
_READ_FIELDS = ("SELECT hc.value FROM json_each(?) AS j LEFT JOIN hc ON hc.key = ? AND hc.field = j.value "
                "ORDER BY j.id")
# a pair counter's halves added each on its own, clamped at 0 (store/__init__.py PAIR_UNIT;
# params: key, field, high, low, high, low)
_ADD_PAIR = ("INSERT INTO hc(key, field, value) VALUES (?, ?, max(?, 0) * 4294967296 + max(?, 0)) "
             "ON CONFLICT(key, field) DO UPDATE SET "
             "value = max((value >> 32) + ?, 0) * 4294967296 + max((value & 4294967295) + ?, 0)")
PURGE_EVERY = 500
# rows one purge deletes at most (plain keys, then hash fields and their expiry rows): 1.5-2 ms
# under the write lock with a backlog of a million expired rows, 0.1 ms with none among a
# million (the whole table scanned before: 119-185 ms); two purges in 500 writes remove up to
# 1,000 rows, more than the writes can make expire
PURGE_LIMIT = 500
# the expired keys a purge takes, through kv_expires / hexp_expires (params: now, limit)
PURGE_SELECTS = ("SELECT key FROM kv WHERE expires IS NOT NULL AND expires <= ? ORDER BY expires LIMIT ?",
                 "SELECT key FROM hexp WHERE expires <= ? ORDER BY expires LIMIT ?")


MMAP_BYTES = 256 * 1024 * 1024


class SqliteStore:
    # Bayes keeps the counter fields its classifications read for a few seconds
    # (antispam/bayes.py FieldCache): this store is outside the process
    cache_reads = True

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time,
                 write_wait: float = MESSAGE_PATH_WRITE_WAIT_S) -> None:
        self.path = Path(path)
        self.now = clock
        self.write_wait = write_wait
        self._local = threading.local()
        self._writes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # executescript manages its own transaction; the first open of an older database
            # builds the expiry indexes (2.5 s a million rows), so it waits like a batch job
            with batch_writes(max(write_wait, BATCH_WRITE_WAIT_S)):
                self._db().executescript(SCHEMA)
        except sqlite3.Error as e:
            raise StoreError(f"cannot initialise {self.path}: {e}") from e
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass

    # -- plumbing -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        wait_ms = int(write_wait(self.write_wait) * 1000)
        if db is not None:
            if self._local.wait_ms != wait_ms:
                try:
                    db.execute(f"PRAGMA busy_timeout={wait_ms}")
                except sqlite3.Error as e:
                    raise StoreError(str(e)) from e
                self._local.wait_ms = wait_ms
            return db
        try:
            db = sqlite3.connect(self.path, timeout=wait_ms / 1000, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # reads through a memory map instead of a read() per page: a Bayes classification
            # (~900 counter fields) 1.50 -> 1.17 ms (docs/decisions/0056-token-model.md); the
            # pages are the OS's, shared by every connection, not a cache per thread
            db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self.path}: {e}") from e
        self._local.db = db
        self._local.wait_ms = wait_ms  # connect's timeout is the busy_timeout
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
            self._purge(db, now, PURGE_LIMIT)

    def purge(self, limit: int = PURGE_LIMIT) -> int:
        """Delete up to about ``limit`` expired rows now; the number deleted. Writes call it now
        and then; a maintenance job may call it until it returns 0."""
        with self._tx() as db:
            return self._purge(db, self.now(), limit)

    def _purge(self, db: sqlite3.Connection, now: float, limit: int) -> int:
        # in chunks, oldest expiry first: a backlog (a million greylist rows expiring together,
        # an older database opened for the first time) costs many small purges, never one
        # delete holding every writer of every process
        n: int = db.execute(f"DELETE FROM kv WHERE key IN ({PURGE_SELECTS[0]})", (now, limit)).rowcount
        left = limit - n
        if left <= 0:
            return n
        for (k,) in db.execute(PURGE_SELECTS[1], (now, left)).fetchall():
            gone: int = db.execute("DELETE FROM hc WHERE key = ? AND field IN "
                                   "(SELECT field FROM hc WHERE key = ? LIMIT ?)", (k, k, left)).rowcount
            n += gone
            if gone < left:  # the whole hash is gone: its expiry row too
                db.execute("DELETE FROM hexp WHERE key = ?", (k,))
                n += 1
                left -= gone + 1
            else:
                left = 0
            if left <= 0:
                break
        return n

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
        try:
            row = self._db().execute("SELECT expires FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)",
                                     (key, self.now())).fetchone()
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
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
                self._live_hash(db, key, now)
                self._add_in(db, key, deltas)
                if ttl:
                    db.execute("INSERT OR REPLACE INTO hexp(key, expires) VALUES (?, ?)", (key, now + ttl))
            self._maybe_purge(db, now)

    def apply_guarded(self, updates: Sequence[GuardedUpdate]) -> list[bool]:
        now = self.now()
        out: list[bool] = []
        # The changes of updates whose guards hold are summed per field and written once per
        # hash, as a batch of additions was before guards (a batch of 32 messages updates a
        # shared token once, not 32 times). Exact: sums of additions commute; an update taking a
        # pair counter back (clamped at 0, which does not commute) is written on its own after
        # what came before it, and a guard is read only after every pending change to it.
        deltas: dict[str, dict[str, int]] = {}
        pairs: dict[str, dict[str, tuple[int, int]]] = {}
        with self._tx() as db:  # BEGIN IMMEDIATE: no other writer between a guard's check and its changes

            def flush() -> None:
                for key, d in deltas.items():
                    self._live_hash(db, key, now)
                    self._add_in(db, key, d)
                for key, pr in pairs.items():
                    self._live_hash(db, key, now)
                    self._add_pairs(db, key, pr)
                deltas.clear()
                pairs.clear()

            for u in updates:
                if u.guard_field in deltas.get(u.guard_key, ()) or u.guard_field in pairs.get(u.guard_key, ()):
                    flush()
                self._live_hash(db, u.guard_key, now)
                row = db.execute("SELECT value FROM hc WHERE key = ? AND field = ?",
                                 (u.guard_key, u.guard_field)).fetchone()
                if (row[0] if row else 0) != u.expected:
                    out.append(False)
                    continue
                taking_back = any(hi < 0 or lo < 0 for _, pr in u.pairs for hi, lo in pr.values())
                if taking_back:
                    flush()  # what came before it first; then it alone
                for key, pr in u.pairs:
                    into = pairs.setdefault(key, {})
                    for f, (hi, lo) in pr.items():
                        h0, l0 = into.get(f, (0, 0))
                        into[f] = (h0 + hi, l0 + lo)
                for key, d in u.deltas:
                    dd = deltas.setdefault(key, {})
                    for f, v in d.items():
                        dd[f] = dd.get(f, 0) + int(v)
                if taking_back:
                    flush()
                out.append(True)
            flush()
            self._maybe_purge(db, now)
        return out

    @staticmethod
    def _add_pairs(db: sqlite3.Connection, key: str, pairs: Mapping[str, tuple[int, int]]) -> None:
        db.executemany(_ADD_PAIR, [(key, f, hi, lo, hi, lo) for f, (hi, lo) in pairs.items()])
        dropped = [(key, f) for f, (hi, lo) in pairs.items() if hi < 0 or lo < 0]
        if dropped:
            db.executemany("DELETE FROM hc WHERE key = ? AND field = ? AND value <= 0", dropped)

    @staticmethod
    def _live_hash(db: sqlite3.Connection, key: str, now: float) -> None:
        """Drops the hash when it has expired (a write starts it again)."""
        check_key(key)
        exp = db.execute("SELECT expires FROM hexp WHERE key = ?", (key,)).fetchone()
        if exp is not None and exp[0] <= now:
            db.execute("DELETE FROM hc WHERE key = ?", (key,))
            db.execute("DELETE FROM hexp WHERE key = ?", (key,))

    @staticmethod
    def _add_in(db: sqlite3.Connection, key: str, deltas: Mapping[str, int]) -> None:
        db.executemany(
            "INSERT INTO hc(key, field, value) VALUES (?, ?, ?) "
            "ON CONFLICT(key, field) DO UPDATE SET value = value + excluded.value",
            [(key, f, int(d)) for f, d in deltas.items()])
        dropped = [(key, f) for f, d in deltas.items() if d < 0]
        if dropped:  # only the fields that went down can have reached 0 (not a scan of the hash)
            db.executemany("DELETE FROM hc WHERE key = ? AND field = ? AND value <= 0", dropped)

    def counter_fields(self, key: str) -> int:
        check_key(key)
        try:
            # an expired hash the purge has not reached yet has no fields
            row = self._db().execute(
                "SELECT count(*) FROM hc WHERE key = ? AND NOT EXISTS "
                "(SELECT 1 FROM hexp WHERE hexp.key = ? AND hexp.expires <= ?)", (key, key, self.now())).fetchone()
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
        return int(row[0])

    def counter_items(self, key: str, batch: int = 5000) -> Iterator[list[tuple[str, int]]]:
        """Every field of a counter hash with its value, ``batch`` at a time in field order (a
        backup): each batch is one short read (no transaction held between them)."""
        check_key(key)
        after = ""
        while True:
            try:
                exp = self._db().execute("SELECT expires FROM hexp WHERE key = ?", (key,)).fetchone()
                if exp is not None and exp[0] <= self.now():
                    return
                rows = self._db().execute("SELECT field, value FROM hc WHERE key = ? AND field > ? "
                                          "ORDER BY field LIMIT ?", (key, after, batch)).fetchall()
            except sqlite3.Error as e:
                raise StoreError(str(e)) from e
            if not rows:
                return
            yield [(str(f), int(v)) for f, v in rows]
            after = rows[-1][0]

    def scan_keys(self, prefix: str, limit: int = 1000) -> list[str]:
        esc = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        now = self.now()
        try:
            db = self._db()
            keys = [r[0] for r in db.execute(
                "SELECT key FROM kv WHERE key LIKE ? ESCAPE '\\' AND (expires IS NULL OR expires > ?) LIMIT ?",
                (esc + "%", now, limit))]
            keys += [r[0] for r in db.execute(
                "SELECT DISTINCT key FROM hc WHERE key LIKE ? ESCAPE '\\' "
                "AND key NOT IN (SELECT key FROM hexp WHERE expires <= ?) LIMIT ?", (esc + "%", now, limit))]
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
        return sorted(set(keys))[:limit]

    def ping(self) -> bool:
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True
