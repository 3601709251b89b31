"""Checking a bounce's tag reads the BATV keys and never makes the first one: with no key
stored, no tag is valid, and the store stays as it was (``manage.py scan`` stores nothing)."""

from __future__ import annotations

from gateway_milter.layers.backscatter import KEYS, BackscatterSettings, sign, verify
from gateway_milter.store.memory import MemoryStore


def test_verifying_with_no_key_stored_writes_nothing() -> None:
    store = MemoryStore()
    signer = MemoryStore()
    tagged = sign("alice@example.com", signer)
    assert verify(tagged, store, BackscatterSettings()) is None
    assert store.get(KEYS) is None
    # the store that signed accepts its own tag
    assert verify(tagged, signer, BackscatterSettings()) == "alice@example.com"


def test_the_rotation_task_says_when_a_rotation_was_skipped() -> None:
    from gateway_milter.store import set_default_store
    from webadmin.antispam_tasks import rotate_batv_keys

    store = MemoryStore()
    set_default_store(store)
    try:
        sign("a@example.com", store)
        results = [rotate_batv_keys.delay().get() for _ in range(9)]  # nine ids, one day apart at most
        assert [r["rotated"] for r in results] == [True] * 8 + [False]
        assert results[-1]["key_id"] == results[-2]["key_id"]
    finally:
        set_default_store(None)
