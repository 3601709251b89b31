"""In-process implementation of the state store (tests, one-shot CLI runs, the benchmarks).

Counter hashes are CounterTables (countertable.py): a Bayes read of ~980 fields of hashes of
60,000-75,000 costs one cache miss a field there instead of a dict's three."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from gateway_milter.store import GuardedUpdate, check_key, pair_add
from gateway_milter.store.countertable import CounterTable


class MemoryStore:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._kv: dict[str, tuple[str, float | None]] = {}
        self._h: dict[str, tuple[Any, float | None]] = {}  # key -> (CounterTable, expiry)
        self._lock = threading.Lock()
        self.now = clock or time.time
        self.round_trips = 0  # counted so tests can assert "one round trip per message"

    def _live(self, key: str) -> tuple[str, float | None] | None:
        item = self._kv.get(key)
        if item is not None and item[1] is not None and item[1] <= self.now():
            del self._kv[key]
            return None
        return item

    def get(self, key: str) -> str | None:
        with self._lock:
            self.round_trips += 1
            item = self._live(check_key(key))
            return item[0] if item else None

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._lock:
            self.round_trips += 1
            self._kv[check_key(key)] = (str(value), self.now() + ttl if ttl else None)

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        with self._lock:
            self.round_trips += 1
            if self._live(check_key(key)) is not None:
                return False
            self._kv[key] = (str(value), self.now() + ttl if ttl else None)
            return True

    def delete(self, *keys: str) -> int:
        with self._lock:
            self.round_trips += 1
            n = 0
            for k in keys:
                if self._live(k) is not None:
                    n += 1
                    del self._kv[k]
                if self._h.pop(k, None) is not None:
                    n += 1
            return n

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self._lock:
            self.round_trips += 1
            item = self._live(check_key(key))
            if item is None:
                value, exp = amount, (self.now() + ttl if ttl else None)
            else:
                value, exp = int(item[0]) + amount, item[1]
            self._kv[key] = (str(value), exp)
            return value

    def ttl(self, key: str) -> float | None:
        with self._lock:
            self.round_trips += 1
            item = self._live(check_key(key))
            if item is None or item[1] is None:
                return None
            return max(0.0, item[1] - self.now())

    def expire(self, keys: Sequence[str], ttl: float) -> int:
        if not ttl or ttl <= 0:
            raise ValueError("expire needs a positive ttl")
        with self._lock:
            self.round_trips += 1
            until, n = self.now() + ttl, 0
            for k in keys:
                item = self._live(check_key(k))
                if item is not None:
                    self._kv[k] = (item[0], until)
                    n += 1
                h = self._hash(k)
                if h is not None:
                    self._h[k] = (h, until)
                    n += 1
            return n

    def _hash(self, key: str) -> Any:
        """The key's CounterTable, or None (none, or expired)."""
        item = self._h.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= self.now():
            del self._h[key]
            return None
        return item[0]

    def counters(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[int]]:
        with self._lock:
            self.round_trips += 1
            out = []
            for key, fields in requests:
                h = self._hash(check_key(key))
                out.append(h.get_many(fields) if h is not None else [0] * len(fields))
            return out

    def add_counters(self, updates: Iterable[tuple[str, Mapping[str, int]]], ttl: float | None = None) -> None:
        with self._lock:
            self.round_trips += 1
            for key, deltas in updates:
                h = self._hash(check_key(key))
                if h is None:
                    h = CounterTable()
                    self._h[key] = (h, None)
                # (a field that falls to 0 or below is removed, as the Redis store's script does)
                h.add_many(deltas if type(deltas) is dict else dict(deltas))
                if ttl:
                    self._h[key] = (h, self.now() + ttl)

    def apply_guarded(self, updates: Sequence[GuardedUpdate]) -> list[bool]:
        with self._lock:
            self.round_trips += 1
            out = []
            for u in updates:
                g = self._hash(check_key(u.guard_key))
                if (g.get_many([u.guard_field])[0] if g is not None else 0) != u.expected:
                    out.append(False)
                    continue
                for key, pairs in u.pairs:
                    h = self._table(key)
                    fields = list(pairs)
                    h.add_many({f: pair_add(v, *pairs[f]) - v for f, v in zip(fields, h.get_many(fields), strict=True)})
                for key, deltas in u.deltas:
                    self._table(key).add_many(dict(deltas))
                out.append(True)
            return out

    def _table(self, key: str) -> Any:
        h = self._hash(check_key(key))
        if h is None:
            h = CounterTable()
            self._h[key] = (h, None)
        return h

    def counter_fields(self, key: str) -> int:
        with self._lock:
            self.round_trips += 1
            h = self._hash(check_key(key))
            return 0 if h is None else len(h)

    def counter_items(self, key: str, batch: int = 5000) -> Iterator[list[tuple[str, int]]]:
        """Every field of a counter hash with its value, ``batch`` at a time (a backup)."""
        with self._lock:
            h = self._hash(check_key(key))
            items = sorted(h.items()) if h is not None else []
        for i in range(0, len(items), batch):
            yield items[i:i + batch]

    def scan_keys(self, prefix: str, limit: int = 1000) -> list[str]:
        with self._lock:
            keys = [k for k in list(self._kv) if k.startswith(prefix) and self._live(k) is not None]
            keys += [k for k in list(self._h) if k.startswith(prefix) and self._hash(k) is not None]
            return sorted(keys)[:limit]

    def ping(self) -> bool:
        return True
