"""A bounce to a BATV-tagged local address while the key store is down: the tag cannot be
verified, but the recipient must still be untagged. Nothing downstream knows ``prvs=``
addresses, so a tagged recipient left as it is would be refused by the mailbox server after
the gateway accepted the bounce (and a bounce of a bounce is dropped: the mail is lost). The
layer used to raise the store's error, and its fail mode (unknown) left the tag in place."""

from __future__ import annotations

import time
from typing import Any

from gateway_milter.layers.backscatter import sign
from gateway_milter.store import StoreError, set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy

DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')


class DownStore(MemoryStore):
    def get(self, key: str) -> Any:
        raise StoreError("connection refused")

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        raise StoreError("connection refused")

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        raise StoreError("connection refused")


def test_it_untags_the_recipient_when_the_key_store_is_down() -> None:
    tagged = sign("bob@example.com", MemoryStore(), now=time.time() - 86400)
    set_default_store(DownStore())
    try:
        ctx = make_ctx(DSN, policy({"backscatter": {"mode": "on"}}), mail_from="", rcpts=(tagged,))
        res = ctx.layer("backscatter")
        assert ctx.facts.get("rewrite_recipients") == {tagged: "bob@example.com"}
        # not refused for a tag that could not be checked, and the trace says why
        assert not res.has("BACKSCATTER_UNSIGNED_BOUNCE")
        assert any(t for t in ctx.trace if "connection refused" in str(t))
    finally:
        set_default_store(None)


def test_it_untags_the_recipient_when_the_stored_keys_are_garbage() -> None:
    tagged = sign("bob@example.com", MemoryStore(), now=time.time() - 86400)
    st = MemoryStore()
    st.set("batv:keys", "{not json")
    set_default_store(st)
    try:
        ctx = make_ctx(DSN, policy({"backscatter": {"mode": "on"}}), mail_from="", rcpts=(tagged,))
        res = ctx.layer("backscatter")
        assert ctx.facts.get("rewrite_recipients") == {tagged: "bob@example.com"}
        assert res.error is None and res.fact("store_error")
    finally:
        set_default_store(None)
