"""``StateStore.apply_guarded``: pair counters whose halves never borrow from each other, and
updates made only while their guard holds (Redis: tests/integration/antispam/test_store_guarded_redis.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.store import PAIR_UNIT, GuardedUpdate, StateStore
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.sqlitestore import SqliteStore


def update(expected: int, pairs: dict[str, tuple[int, int]], deltas: dict[str, int] | None = None,
           guard: str = "m1") -> GuardedUpdate:
    return GuardedUpdate("h:g", guard, expected, (("h:g", deltas or {}),), (("h:g", pairs),))


def pairs_never_borrow(s: StateStore) -> None:
    big = (1 << 30) * PAIR_UNIT  # a spam count past a double's 53 bits once packed
    s.add_counters([("h:g", {"both": 3 * PAIR_UNIT + 2, "ham0": 5 * PAIR_UNIT, "spam0": 4, "big": big + 7})])
    assert s.apply_guarded([update(0, {"both": (-1, -1), "ham0": (1, -1), "spam0": (-1, 1), "big": (-1, -8),
                                       "absent": (-1, 2), "gone": (-1, -1)}, {"#h": -1})]) == [True]
    (vals,) = s.counters([("h:g", ["both", "ham0", "spam0", "big", "absent", "gone", "#h"])])
    assert vals == [2 * PAIR_UNIT + 1, 6 * PAIR_UNIT, 5, big - PAIR_UNIT, 2, 0, 0]
    # a pair taken to (0, 0) is removed like any counter at 0
    assert s.apply_guarded([update(0, {"spam0": (0, -9)})]) == [True]
    assert s.counters([("h:g", ["spam0"])]) == [[0]] and s.counter_fields("h:g") == 4


def updates_wait_for_their_guard(s: StateStore) -> None:
    s.add_counters([("h:g", {"m1": 1})])
    got = s.apply_guarded([update(0, {"t": (1, 0)}, {"m1": 1}),  # read before another writer set m1
                           update(1, {"t": (-1, 1)}, {"m1": 1}),  # m1 still 1: made
                           update(1, {"t": (0, 5)}, {"m1": 3}),  # m1 is 2 now: the one before changed it
                           update(0, {"u": (1, 0)}, {"m2": 1}, guard="m2")])
    assert got == [False, True, False, True]
    assert s.counters([("h:g", ["t", "m1", "u", "m2"])]) == [[1, 2, PAIR_UNIT, 1]]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    return MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.sqlite3")


def test_a_decrement_never_borrows_from_the_other_half_of_a_pair(store: StateStore) -> None:
    pairs_never_borrow(store)


def test_an_update_is_made_only_while_its_guard_holds(store: StateStore) -> None:
    updates_wait_for_their_guard(store)


def test_a_batch_leaves_the_sqlite_store_as_its_updates_one_by_one(tmp_path: Path) -> None:
    # the SQLite store sums a batch's additions per field; takings-back and guards read again
    # must still come out as the updates made one at a time
    import random

    rng = random.Random(7)
    fields = [f"t{i}" for i in range(6)]
    batch = []
    for _ in range(60):
        g = rng.choice([f"m{i}" for i in range(30)])  # mostly fresh guards: long runs summed
        pairs = {f: (rng.choice([0, 1, 1, -1]), rng.choice([0, 1, -1])) for f in rng.sample(fields, 3)}
        batch.append(update(rng.choice([0, 0, 1]), pairs, {g: 1, "#s": rng.choice([1, 2])}, guard=g))
    one, many = SqliteStore(tmp_path / "one.sqlite3"), SqliteStore(tmp_path / "many.sqlite3")
    got_one = [r for u in batch for r in one.apply_guarded([u])]
    assert many.apply_guarded(batch) == got_one and any(got_one) and not all(got_one)
    names = [*fields, *(f"m{i}" for i in range(30)), "#s"]
    assert many.counters([("h:g", names)]) == one.counters([("h:g", names)])
