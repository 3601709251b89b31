"""The state-store contract, run against every implementation (Redis: tests/integration)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_milter.store import StateStore
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.sqlitestore import SqliteStore
from tests.unit.antispam.helpers import Clock


def contract(s: StateStore, clock: Clock) -> None:
    assert s.get("k:a") is None
    s.set("k:a", "1")
    assert s.get("k:a") == "1"
    assert s.add("k:a", "2") is False and s.get("k:a") == "1"
    assert s.add("k:b", "x", ttl=10) is True
    assert 0 < (s.ttl("k:b") or 0) <= 10
    clock.t += 11
    assert s.get("k:b") is None
    assert s.add("k:b", "y", ttl=10) is True  # expired keys can be added again
    assert s.incr("k:n", 2, ttl=5) == 2
    assert s.incr("k:n", 3, ttl=5) == 5
    clock.t += 6
    assert s.incr("k:n", 1, ttl=5) == 1  # a fixed window starts again
    assert s.delete("k:a", "k:missing") == 1
    s.add_counters([("h:1", {"a": 2, "b": 1}), ("h:2", {"a": 5})])
    s.add_counters([("h:1", {"a": 1, "b": -1})])
    assert s.counters([("h:1", ["a", "b", "c"]), ("h:2", ["a"]), ("h:none", ["a"])]) == [[3, 0, 0], [5], [0]]
    assert s.counter_fields("h:1") == 1  # b dropped to 0 and was removed
    # fields in the order asked, repeated ones each time, any characters, an empty request
    odd = ['q"uote', "back\\slash", "ünï", "[1]", "a b", "#s"]
    s.add_counters([("h:odd", {f: i + 1 for i, f in enumerate(odd)})])
    assert s.counters([("h:odd", [*reversed(odd), "a", odd[0], odd[0]]), ("h:odd", [])]) == [
        [6, 5, 4, 3, 2, 1, 0, 1, 1], []]
    s.delete("h:odd")
    assert s.scan_keys("h:") == ["h:1", "h:2"]
    with pytest.raises(ValueError):
        s.get("bad\nkey")


def test_it_honours_the_contract_in_memory() -> None:
    c = Clock()
    contract(MemoryStore(clock=c), c)


def test_it_honours_the_contract_in_sqlite(tmp_path: Path) -> None:
    c = Clock()
    contract(SqliteStore(tmp_path / "s.db", clock=c), c)


def test_it_counts_atomically_across_threads_in_sqlite(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "s.db")

    def work() -> None:
        for _ in range(50):
            s.incr("n", 1)
            s.add_counters([("h", {"f": 1})])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.get("n") == "200"
    assert s.counters([("h", ["f"])]) == [[200]]


def test_it_shares_state_between_two_handles_of_one_file(tmp_path: Path) -> None:
    a, b = SqliteStore(tmp_path / "s.db"), SqliteStore(tmp_path / "s.db")
    a.set("grey:x", "1", ttl=60)
    assert b.get("grey:x") == "1"
    assert b.add("grey:x", "2") is False


def test_it_answers_many_counter_fields_in_one_call(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "s.db")
    fields = [f"f{i}" for i in range(2500)]  # more than SQLite's parameter limit
    s.add_counters([("big", {f: 1 for f in fields[::2]})])
    (vals,) = s.counters([("big", fields)])
    assert sum(vals) == 1250 and vals[0] == 1 and vals[1] == 0


@pytest.fixture()
def mem() -> Iterator[MemoryStore]:
    yield MemoryStore()


def test_it_counts_round_trips_in_memory(mem: MemoryStore) -> None:
    mem.counters([("a", ["x"]), ("b", ["y"])])
    assert mem.round_trips == 1
