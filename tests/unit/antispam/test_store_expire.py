"""``StateStore.expire``: a sliding expiry for existing keys (plain and counter hashes), in one
round trip, on every implementation (Redis: tests/integration/antispam/test_store_expire_redis.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.store import StateStore
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.sqlitestore import SqliteStore
from tests.unit.antispam.helpers import Clock


def expire_contract(s: StateStore, clock: Clock) -> None:
    s.set("e:a", "1", ttl=10)
    s.set("e:forever", "x")
    s.incr("e:n", 1, ttl=10)
    s.add_counters([("e:h", {"f": 1})], ttl=10)
    s.set("e:gone", "1", ttl=1)
    clock.t += 2
    assert s.expire(["e:a", "e:forever", "e:n", "e:h", "e:gone", "e:missing"], 100) == 4
    assert s.get("e:gone") is None and s.get("e:missing") is None  # absent keys stay absent
    assert 99 <= (s.ttl("e:a") or 0) <= 100
    assert 99 <= (s.ttl("e:forever") or 0) <= 100  # a key without expiry gets one
    clock.t += 50
    assert s.expire(["e:a"], 100) == 1  # slides again
    clock.t += 60
    assert s.get("e:a") == "1"  # 110 s after the first expire, 60 after the second
    assert s.get("e:n") is None and s.get("e:forever") is None
    assert s.counters([("e:h", ["f"])]) == [[0]]
    assert s.expire([], 10) == 0
    with pytest.raises(ValueError):
        s.expire(["e:a"], 0)


def test_it_slides_the_expiry_in_memory() -> None:
    c = Clock()
    expire_contract(MemoryStore(clock=c), c)


def test_it_slides_the_expiry_in_sqlite(tmp_path: Path) -> None:
    c = Clock()
    expire_contract(SqliteStore(tmp_path / "s.sqlite3", clock=c), c)


def test_it_expires_many_keys_in_one_round_trip_in_memory() -> None:
    s = MemoryStore()
    for i in range(5):
        s.set(f"e:{i}", "1")
    before = s.round_trips
    assert s.expire([f"e:{i}" for i in range(5)], 10) == 5
    assert s.round_trips - before == 1
