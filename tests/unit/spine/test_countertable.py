"""CounterTable (gateway_milter/store/countertable.py and .c): the C type gives what the Python
reference gives, operation by operation, over short fields (in the slots), long and non-ASCII
ones (in the dict beside them), removals that shift runs back, and growth; bad input is refused
before anything changes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway_milter.store import countertable
from gateway_milter.store.countertable import INT64_MAX, INT64_MIN, PyCounterTable

KINDS = [PyCounterTable]
if countertable.NATIVE:
    KINDS.append(countertable.CounterTable)


def _fields(rng: random.Random, n: int) -> list[str]:
    """Bayes-like fields (``t`` + 12 hex), short ones, empty, NUL inside, 15 and 16 characters
    (the slot's limit and one over), non-ASCII."""
    out = []
    for _ in range(n):
        k = rng.randrange(8)
        if k < 4:
            out.append(f"t{rng.getrandbits(12):012x}")  # few distinct: many hits, updates, removals
        elif k == 4:
            out.append(rng.choice(["", "#s", "#h", "a\x00", "a", "x" * 15, "x" * 16, "y" * 40]))
        elif k == 5:
            out.append(rng.choice(["é", "tä", "s alice@example.org|192.0.2.0/24", "\U0001f600"]))
        else:
            out.append(f"{rng.getrandbits(48):x}")
    return out


@pytest.mark.skipif(not countertable.NATIVE, reason="the C module is not built (scripts/compiled.py build)")
def test_the_c_table_does_what_the_reference_does() -> None:
    rng = random.Random(7)
    c, p = countertable.CounterTable(), PyCounterTable()
    for step in range(3000):
        op = rng.randrange(10)
        fields = _fields(rng, rng.randrange(1, 60))
        if op < 4:
            deltas = {f: rng.randrange(-3, 6) for f in fields}
            c.add_many(deltas)
            p.add_many(deltas)
        elif op < 6:
            values = [rng.randrange(-(1 << 40), 1 << 40) for _ in fields]
            c.set_many(fields, values)
            p.set_many(fields, values)
        elif op < 7:
            c.discard_many(fields)
            p.discard_many(fields)
        elif op < 8 and step % 500 == 499:
            c.clear()
            p.clear()
        assert c.get_many(fields) == p.get_many(fields), step
        assert c.get_many(fields, None) == p.get_many(fields, None), step
        assert [c.get(f) for f in fields] == [p.get(f) for f in fields]
        assert len(c) == len(p)
    assert sorted(c.items()) == sorted(p.items()) and len(c) > 100


@pytest.mark.parametrize("kind", KINDS)
def test_many_fields_grow_the_table_and_removals_keep_the_others(kind: Any) -> None:
    t = kind()
    keys = [f"t{i:012x}" for i in range(50_000)]
    t.add_many(dict.fromkeys(keys, 3))
    assert len(t) == 50_000 and t.get_many(keys[:5]) == [3] * 5
    t.add_many({k: -3 for k in keys[::2]})  # to 0: removed
    assert len(t) == 25_000
    assert t.get_many(keys[:6], None) == [None, 3, None, 3, None, 3]
    assert sum(t.get_many(keys)) == 3 * 25_000


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_refused_and_changes_nothing(kind: Any) -> None:
    t = kind()
    t.add_many({"a": 1, "a-long-field-beyond-the-slot": 2})
    with pytest.raises(TypeError):
        t.add_many({"b": 1, 3: 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        t.add_many({"b": 1, "c": "1"})  # type: ignore[dict-item]
    with pytest.raises(OverflowError):
        t.add_many({"b": 1, "a": INT64_MAX})  # 1 + max
    with pytest.raises(OverflowError):
        t.set_many(["b", "c"], [1, INT64_MIN - 1])
    with pytest.raises(ValueError):
        t.set_many(["b", "c"], [1])
    with pytest.raises(TypeError):
        t.get_many(["a", b"a"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        t.add_many([("a", 1)])  # type: ignore[arg-type]
    assert sorted(t.items()) == [("a", 1), ("a-long-field-beyond-the-slot", 2)]
    t.set_many(["m"], [INT64_MIN])  # the range's ends are values
    assert t.get("m") == INT64_MIN and t.get_many(["zz"], "none") == ["none"]
    assert not kind() and t  # (len: an empty table is false)


@pytest.mark.skipif(not countertable.NATIVE, reason="the C module is not built (scripts/compiled.py build)")
def test_str_subclasses_are_not_fields() -> None:
    class Name(str):
        def __hash__(self) -> int:
            raise AssertionError("never called")

    t = countertable.CounterTable()
    with pytest.raises(TypeError):
        t.get_many([Name("a")])
    with pytest.raises(TypeError):
        countertable.CounterTable(1)  # type: ignore[call-arg]


@pytest.mark.skipif(not countertable.NATIVE, reason="the C module is not built (scripts/compiled.py build)")
def test_the_c_table_keeps_no_memory_after_its_work() -> None:
    import gc
    import tracemalloc

    rng = random.Random(3)
    keys = [f"t{i:012x}" for i in range(1500)] + [f"a-long-field-{i}-beyond-the-slot" for i in range(300)]

    def work() -> None:
        t = countertable.CounterTable()
        for _ in range(20):
            # (values above the small ints Python keeps: a leaked reference keeps its int alive)
            t.add_many({k: rng.randrange(-(1 << 33), 1 << 34) for k in rng.sample(keys, 300)})
            t.get_many(keys, None)
            t.get_many(keys, 1 << 40)
            t.set_many(keys[:100], [(1 << 40) + i for i in range(100)])
            t.discard_many(keys[50:150])
            t.items()
            with pytest.raises(OverflowError):
                t.add_many({"a": 1 << 70})
            with pytest.raises(TypeError):
                t.get_many([1])  # type: ignore[list-item]

    work()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(5):
            work()
        gc.collect()
        left = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert left < 4096, left  # (a reference leaked a call would keep tens of KB)
