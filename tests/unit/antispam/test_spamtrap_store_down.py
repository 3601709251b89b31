"""Spotting a spam-trap recipient needs no store: when the state store fails, only the client's
mark (SPAMTRAP_IP, read or written) is lost, never SPAMTRAP itself (a failing store made the
layer's result unknown, so trap mail was delivered and its score lost)."""

from __future__ import annotations

from typing import Any

from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store import StoreError, set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg


class DownStore(MemoryStore):
    def get(self, key: str) -> Any:
        raise StoreError("connection refused")

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        raise StoreError("connection refused")


def test_a_trap_hit_survives_a_store_that_is_down() -> None:
    set_default_store(DownStore())
    try:
        pol = PolicySnapshot.from_document({"settings": {"spamtrap": {"addresses": ["trap@example.com"],
                                                                      "train_bayes": False}},
                                            "domains": ["example.com"]})
        ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("trap@example.com",))
        res = ctx.layer("spamtrap")
        assert res.error is None
        assert res.has("SPAMTRAP") and not res.has("SPAMTRAP_IP")
        assert res.fact("store_error") == "connection refused"
    finally:
        set_default_store(None)
