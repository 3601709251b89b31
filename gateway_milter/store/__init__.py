"""The ephemeral state store shared by every milter process (and node).

Greylisting triplets, rate-limit counters, dynamic screening and Bayes token counts live here.
Two implementations sit behind one small interface, :class:`StateStore`:

- :class:`~gateway_milter.store.redisstore.RedisStore` when ``GATEWAY_REDIS_URL`` is set
  (production, several processes and nodes);
- :class:`~gateway_milter.store.sqlitestore.SqliteStore` otherwise: one SQLite file in WAL mode
  under ``GATEWAY_DATA_DIR`` (``state.sqlite3``), safe for several processes on one host;
- :class:`~gateway_milter.store.memory.MemoryStore` for unit tests and one-shot CLI runs.

Contract (every implementation MUST honour it; tests/unit/antispam/test_store.py runs the same
checks against all three, tests/integration/antispam against real Redis):

Keys are ``str`` of at most 512 characters, namespaced by the caller with a colon
(``grey:``, ``rate:``, ``bayes:``). Values are ``str``. A ``ttl`` is seconds (float allowed);
``None`` means no expiry. Expired keys read as absent.

``get(key) -> str | None``
``set(key, value, ttl=None)``                 overwrite (and reset the expiry)
``add(key, value, ttl=None) -> bool``         set only if absent; True when this call created it
``delete(*keys) -> int``                      number of keys that existed
``incr(key, amount=1, ttl=None) -> int``      atomic; the ttl is applied only when the key is
                                               created (fixed window), the new value is returned
``ttl(key) -> float | None``                   seconds left, None when absent or without expiry
``expire(keys, ttl) -> int``                   reset the expiry of every existing key (plain or
                                               counter hash) to ``ttl`` seconds from now, in ONE
                                               round trip; absent keys are left absent; returns
                                               how many existed (a sliding window: greylisting
                                               keeps a sender as long as it keeps sending)
``counters(requests) -> list[list[int]]``     counter hashes: for each ``(key, fields)`` the
                                               integer value of every field (0 when absent), in
                                               ONE round trip for all requests (Bayes tokens)
``add_counters(updates, ttl=None)``            for each ``(key, {field: delta})`` add the deltas
                                               atomically per key, one round trip; a field that
                                               drops to <= 0 is removed
``apply_guarded(updates) -> list[bool]``       for each :class:`GuardedUpdate` in order: its
                                               changes made only when its guard field still
                                               holds the value expected, the check and the
                                               changes as one atomic step; one round trip;
                                               per update, whether it was made. Its pair
                                               counters (``high * PAIR_UNIT + low``) add each
                                               half on its own, clamped at 0: a decrement never
                                               borrows from the other half
``counter_fields(key) -> int``                 number of fields of a counter hash
``scan_keys(prefix, limit) -> list[str]``      keys with a prefix (admin/statistics only, never
                                               on the per-message path)
``ping() -> bool``

A store never raises on a missing key; connection errors raise :class:`StoreError`, which
callers map to their fail mode (greylisting fails open to "unknown", Bayes gives no score).

Waiting for another writer: a write MUST NOT wait longer than the store's short bound
(``GATEWAY_STORE_WRITE_WAIT``, 1 s) unless the calling thread is inside :func:`batch_writes`,
then it may wait as long as the block says (30 s by default). Writes are made on the message
path by default (libmilter's connection threads, the end-of-message stage threads), where a
store held by a long job must turn into a quick :class:`StoreError`, not a stalled SMTP
command; bulk jobs (``manage.py bayes``, the milter's background learner) declare themselves.
The embedded SQLite store honours it (its only waits are for the write lock); Redis has no
such lock, and its socket time-out (2 s) bounds every call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

MAX_KEY = 512
PAIR_UNIT = 1 << 32  # a pair counter is high * PAIR_UNIT + low (Bayes: spam and ham counts)
LOW_MASK = PAIR_UNIT - 1
MESSAGE_PATH_WRITE_WAIT_S = 1.0  # default of GATEWAY_STORE_WRITE_WAIT
BATCH_WRITE_WAIT_S = 30.0

# a context variable, so per thread: each libmilter connection thread, stage thread and the
# background learner has its own (a new thread starts without one, i.e. on the short bound)
_batch_wait: ContextVar[float | None] = ContextVar("bulwark_store_batch_wait", default=None)


class StoreError(RuntimeError):
    """The state store could not be reached or answered an error."""


@dataclass(frozen=True, slots=True)
class GuardedUpdate:
    """Changes to counter hashes made only while ``guard_key``'s ``guard_field`` holds
    ``expected`` (0: absent): two writers that read the same guard cannot both make theirs."""
    guard_key: str
    guard_field: str
    expected: int
    deltas: tuple[tuple[str, Mapping[str, int]], ...]  # as add_counters: a field at <= 0 is removed
    # pair counters: per field the (high, low) deltas, each half clamped at 0 on its own
    pairs: tuple[tuple[str, Mapping[str, tuple[int, int]]], ...] = ()


def pair_add(value: int, high: int, low: int) -> int:
    """A pair counter after adding ``high`` and ``low`` to its halves, each kept at 0 or above."""
    return max((value >> 32) + high, 0) * PAIR_UNIT + max((value & LOW_MASK) + low, 0)


class StateStore(Protocol):
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl: float | None = None) -> None: ...
    def add(self, key: str, value: str, ttl: float | None = None) -> bool: ...
    def delete(self, *keys: str) -> int: ...
    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int: ...
    def ttl(self, key: str) -> float | None: ...
    def expire(self, keys: Sequence[str], ttl: float) -> int: ...
    def counters(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[int]]: ...
    def add_counters(self, updates: Iterable[tuple[str, Mapping[str, int]]], ttl: float | None = None) -> None: ...
    def apply_guarded(self, updates: Sequence[GuardedUpdate]) -> list[bool]: ...
    def counter_fields(self, key: str) -> int: ...
    def counter_items(self, key: str, batch: int = 5000) -> Iterator[list[tuple[str, int]]]: ...
    def scan_keys(self, prefix: str, limit: int = 1000) -> list[str]: ...
    def ping(self) -> bool: ...


@contextmanager
def batch_writes(wait: float = BATCH_WRITE_WAIT_S) -> Iterator[None]:
    """Writes made by this thread inside the block may wait up to ``wait`` seconds for another
    writer (bulk jobs nobody waits on: training, background learning, schema changes)."""
    token = _batch_wait.set(wait)
    try:
        yield
    finally:
        _batch_wait.reset(token)


def write_wait(message_path: float) -> float:
    """How long a write of this thread may wait for another writer: the batch block's wait, else
    ``message_path`` (the store's short bound)."""
    w = _batch_wait.get()
    return message_path if w is None else w


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or any(c in key for c in "\r\n\0"):
        raise ValueError(f"invalid store key {key!r:.80}")
    return key


_lock = threading.Lock()
_default: StateStore | None = None


def default_store() -> StateStore:
    """The process-wide store chosen by the environment (GATEWAY_REDIS_URL, GATEWAY_DATA_DIR)."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = open_store()
    return _default


def open_store(redis_url: str | None = None, data_dir: str | None = None) -> StateStore:
    from gateway_milter import envconfig

    if redis_url is None or data_dir is None:
        cfg = envconfig.load()
        redis_url = cfg.redis_url if redis_url is None else redis_url
        data_dir = str(cfg.data_dir) if data_dir is None else data_dir
    if redis_url:
        from gateway_milter.store.redisstore import RedisStore

        return RedisStore(redis_url)
    from pathlib import Path

    from gateway_milter.store.sqlitestore import SqliteStore

    wait = envconfig.env_float("GATEWAY_STORE_WRITE_WAIT", MESSAGE_PATH_WRITE_WAIT_S)
    return SqliteStore(Path(data_dir) / "state.sqlite3", write_wait=wait)


def set_default_store(store: StateStore | None) -> None:
    """Replace the process-wide store (tests, the scan CLI)."""
    global _default
    with _lock:
        _default = store
