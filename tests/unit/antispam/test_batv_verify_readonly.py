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
