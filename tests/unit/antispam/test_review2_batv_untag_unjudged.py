"""A message the layer does not refuse is delivered untagged even when its tag no longer
verifies (expired, a retired key past its grace, a reply to an address a list server stored):
only valid tags were taken off, so an auto-reply or a reply to an expired tag kept the prvs=
address, which nothing downstream knows; it was refused after acceptance and, for a null
sender, its bounce dropped: the mail was lost. A DSN with such a tag is still refused."""

from __future__ import annotations

from gateway_milter.layers.backscatter import sign
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy

DAY = 86400.0
DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')


def expired(store: MemoryStore, address: str) -> str:
    import time

    sign("alice@example.com", store)  # today's key
    return sign(address, store, 7, time.time() - 40 * DAY)  # expired a month ago


def test_an_auto_reply_to_an_expired_tag_is_delivered_untagged(store: MemoryStore) -> None:
    tagged = expired(store, "bob@example.com")
    pol = policy({"backscatter": {"mode": "on"}})
    ctx = make_ctx(msg("Out of office", "I am away"), pol, mail_from="", rcpts=(tagged,))
    res = ctx.layer("backscatter")
    assert not res.has("BACKSCATTER_UNSIGNED_BOUNCE")
    assert ctx.facts.get("rewrite_recipients") == {tagged: "bob@example.com"}


def test_a_reply_to_an_expired_tag_is_delivered_untagged(store: MemoryStore) -> None:
    tagged = expired(store, "Bob@example.com")
    pol = policy({"backscatter": {"mode": "on"}})
    ctx = make_ctx(msg("Re: list", "answer"), pol, mail_from="list@remote.test", rcpts=(tagged,))
    ctx.layer("backscatter")
    assert ctx.facts.get("rewrite_recipients") == {tagged: "Bob@example.com"}


def test_a_dsn_to_an_expired_tag_is_still_refused(store: MemoryStore) -> None:
    tagged = expired(store, "bob@example.com")
    pol = policy({"backscatter": {"mode": "on"}})
    res = make_ctx(DSN, pol, mail_from="", rcpts=(tagged,)).layer("backscatter")
    assert res.has("BACKSCATTER_UNSIGNED_BOUNCE") and res.fact("unsigned") == [tagged]
