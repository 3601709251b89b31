"""A local recipient with a valid BATV tag is delivered to the plain address whatever the sender
and content (nothing downstream knows ``prvs=`` addresses): auto-replies, which go to the
Return-Path with a null sender but are no DSNs, replies to the Return-Path, and bounces while
refusal is still off. Retired keys verify by days, as tags expire; tags of the day the keys were
made again are not refused."""

from __future__ import annotations

import gateway_milter.layers.backscatter as bs
from gateway_milter.layers.backscatter import KEYS, BackscatterSettings, rotate_keys, sign, verify
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import Clock, make_ctx, msg, policy

DAY = 86400.0
DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')
T0 = 20_000 * DAY + 12 * 3600  # noon of day 20000


def test_an_auto_reply_to_a_signed_sender_is_delivered_untagged(store: MemoryStore) -> None:
    tagged = sign("bob@example.com", store)
    pol = policy({"backscatter": {"mode": "on"}})
    ctx = make_ctx(msg("Out of office", "I am away"), pol, mail_from="", rcpts=(tagged,))
    res = ctx.layer("backscatter")
    assert ctx.facts.get("rewrite_recipients") == {tagged: "bob@example.com"}
    assert not res.has("BACKSCATTER_UNSIGNED_BOUNCE") and res.fact("bounce") == "not a DSN"


def test_a_bounce_while_refusal_is_off_is_delivered_untagged(store: MemoryStore) -> None:
    tagged = sign("bob@example.com", store)
    pol = policy({"backscatter": {"mode": "on", "refuse_unsigned_bounces": False}})
    ctx = make_ctx(DSN, pol, mail_from="", rcpts=(tagged, "carol@example.com"))
    res = ctx.layer("backscatter")
    assert ctx.facts.get("rewrite_recipients") == {tagged: "bob@example.com"}
    assert not res.has("BACKSCATTER_UNSIGNED_BOUNCE")  # the untagged one passes too: refusal is off


def test_a_reply_with_a_sender_to_a_signed_address_is_delivered_untagged(store: MemoryStore) -> None:
    tagged = sign("bob@example.com", store)
    pol = policy({"backscatter": {"mode": "on"}})
    ctx = make_ctx(msg("Re: hi", "answer"), pol, mail_from="carol@remote.test", rcpts=(tagged, "dave@example.com"))
    res = ctx.layer("backscatter")
    assert ctx.facts.get("rewrite_recipients") == {tagged: "bob@example.com"}
    assert not res.has("BACKSCATTER_UNSIGNED_BOUNCE")


def test_an_exempt_recipient_is_matched_without_its_tag(store: MemoryStore) -> None:
    sign("alice@example.com", store)  # a key exists: a tag it did not make is judged
    pol = policy({"backscatter": {"mode": "on"}})
    forged = "prvs=1999abcdef=postmaster@example.com"
    res = make_ctx(DSN, pol, mail_from="", rcpts=(forged,)).layer("backscatter")
    assert not res.has("BACKSCATTER_UNSIGNED_BOUNCE")  # postmaster always receives bounces
    res = make_ctx(DSN, pol, mail_from="", rcpts=("prvs=1999abcdef=bob@example.com",)).layer("backscatter")
    assert res.has("BACKSCATTER_UNSIGNED_BOUNCE")


def test_a_retired_key_verifies_every_unexpired_tag_it_made_with_the_default_grace() -> None:
    c = Clock(T0)
    st = MemoryStore(clock=c)
    s = BackscatterSettings()  # validity_days 7, grace_days 7
    tagged = sign("bob@example.com", st, s.validity_days, T0 - 1)  # just before the rotation
    rotate_keys(st, T0)
    last_day = T0 + 7 * DAY + 3600  # day 20007: the tag's own expiry day, still valid
    assert verify(tagged, st, s, last_day) == "bob@example.com"
    assert verify(tagged, st, s, last_day + DAY) is None  # expired the day after
    short = BackscatterSettings(grace_days=2)
    assert verify(tagged, st, short, T0 + 2 * DAY + 3600) == "bob@example.com"  # day R + grace
    assert verify(tagged, st, short, T0 + 3 * DAY) is None


def test_a_tag_signed_earlier_the_day_the_keys_were_lost_is_not_refused(store: MemoryStore) -> None:
    real_time = bs.time.time
    tagged = sign("bob@example.com", store, now=T0 - 3 * 3600)  # signed this morning
    store.delete(KEYS)  # the store lost its keys
    bs.time.time = lambda: T0  # type: ignore[assignment]
    try:
        sign("alice@example.com", store, now=T0)  # the next signed message makes a new key
        pol = policy({"backscatter": {"mode": "on"}})
        res = make_ctx(DSN, pol, mail_from="", rcpts=(tagged,)).layer("backscatter")
        assert res.has("BATV_UNKNOWN_KEY") and not res.has("BACKSCATTER_UNSIGNED_BOUNCE")
        # a tag dated the day before the new key's day is unknown as before; one of the day
        # after is a forgery the new key should have made, refused
        later = make_ctx(DSN, pol, mail_from="", rcpts=(sign("bob@example.com", MemoryStore(), now=T0 + DAY),))
        bs.time.time = lambda: T0 + DAY  # type: ignore[assignment]
        assert later.layer("backscatter").has("BACKSCATTER_UNSIGNED_BOUNCE")
    finally:
        bs.time.time = real_time  # type: ignore[assignment]


def test_lowering_validity_days_keeps_the_tags_made_under_the_longer_one() -> None:
    c = Clock(T0)
    st = MemoryStore(clock=c)
    tagged = sign("bob@example.com", st, 30, T0)  # signed while validity_days was 30
    assert verify(tagged, st, BackscatterSettings(validity_days=7), T0 + 10 * DAY) == "bob@example.com"
    assert verify(tagged, st, BackscatterSettings(validity_days=7), T0 + 31 * DAY) is None  # expired
    forged = tagged[:6] + f"{(int(tagged[6:9]) + 5) % 1000:03d}" + tagged[9:]  # a later expiry, same MAC
    assert verify(forged, st, BackscatterSettings(validity_days=30), T0 + DAY) is None
