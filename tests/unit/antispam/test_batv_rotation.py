"""BATV key rotation over years: each rotation keeps the retired key for its grace period,
the current key always signs, and stored key ids stay unique (one digit, 1..9)."""

from __future__ import annotations

import json

from gateway_milter.layers.backscatter import KEYS, BackscatterSettings, load_keys, rotate_keys, sign, verify
from gateway_milter.store.memory import MemoryStore

DAY = 86400.0
T0 = 1_800_000_000.0


def stored_ids(st: MemoryStore) -> list[int]:
    return [int(k["id"]) for k in json.loads(st.get(KEYS) or "[]")]


def test_it_keeps_the_previous_key_for_its_grace_period_over_25_monthly_rotations() -> None:
    st = MemoryStore(clock=lambda: T0)
    s = BackscatterSettings(validity_days=14, grace_days=3)  # grace shorter than validity: grace decides
    load_keys(st)
    t = T0
    seen_ids = []
    for n in range(25):
        before = sign("alice@example.com", st, s.validity_days, t)
        new_id = rotate_keys(st, t)
        seen_ids.append(new_id)
        ids = stored_ids(st)
        assert len(ids) == len(set(ids)), f"rotation {n + 1}: duplicate key ids {ids}"
        # the current (new) key signs, and its tags verify
        after = sign("alice@example.com", st, s.validity_days, t)
        assert after.startswith(f"prvs={new_id}")
        assert verify(after, st, s, t) == "alice@example.com"
        # a tag of the key just retired: valid within the grace period, invalid after it
        assert verify(before, st, s, t + 2 * DAY) == "alice@example.com", f"rotation {n + 1}: grace lost"
        assert verify(before, st, s, t + 4 * DAY) is None, f"rotation {n + 1}: valid after the grace"
        t += 30 * DAY
    # ids follow each other from the current key's: 2, 3, ..., 9, 1, 2, ...
    assert seen_ids == [(i % 9) + 1 for i in range(1, 26)]


def test_it_moves_on_from_the_current_key_in_a_store_left_by_the_old_rotation() -> None:
    # the old rotation left ids [6, 7, 8, 9, 1] with 1 current and picked 1 again forever
    st = MemoryStore()
    keys = [{"id": i, "secret": f"{i:02x}" * 32, "created": T0 - 40 * DAY, "retired": T0 - 35 * DAY}
            for i in (6, 7, 8, 9)]
    keys.append({"id": 1, "secret": "11" * 32, "created": T0 - DAY, "retired": None})
    st.set(KEYS, json.dumps(keys))
    s = BackscatterSettings(validity_days=7, grace_days=7)
    tagged = sign("a@example.com", st, 7, T0)
    assert rotate_keys(st, T0) == 2
    assert stored_ids(st) == [1, 2]  # keys retired 35 days ago verify nothing any more: dropped
    assert verify(tagged, st, s, T0 + DAY) == "a@example.com"


def test_it_skips_a_rotation_rather_than_drop_a_key_in_its_grace_period() -> None:
    st = MemoryStore()
    s = BackscatterSettings(validity_days=30, grace_days=30)
    load_keys(st)
    t = T0
    tags = []
    for _ in range(8):
        tags.append(sign("a@example.com", st, 30, t))
        rotate_keys(st, t)
        t += DAY
    assert sorted(stored_ids(st)) == list(range(1, 10))
    current = stored_ids(st)[-1]
    assert rotate_keys(st, t) == current  # no id free: the current key stays
    assert all(verify(tag, st, s, t) == "a@example.com" for tag in tags)
    # once the oldest retired key is past every tag's life, its id is free again
    t += 31 * DAY
    assert rotate_keys(st, t) != current
    ids = stored_ids(st)
    assert len(ids) == len(set(ids))
