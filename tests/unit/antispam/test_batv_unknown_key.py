"""A bounce whose tag no stored key can judge (the keys were lost: a Redis restart without
persistence, eviction, a reset) is delivered, not refused: ``BATV_UNKNOWN_KEY``. Unsigned bounces
and forged tags of a key the store knows are still refused."""

from __future__ import annotations

import time

from gateway_milter.layers.backscatter import KEYS, BackscatterSettings, sign, unknown_key
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy

DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')
DAY = 86400.0


def test_a_tag_made_before_the_keys_were_lost_is_not_refused(store: MemoryStore) -> None:
    now = time.time()
    tagged = sign("bob@example.com", store, now=now - 2 * DAY)  # signed two days ago
    store.delete(KEYS)  # the store lost its keys
    pol = policy({"backscatter": {"mode": "on"}})
    ctx = make_ctx(DSN, pol, mail_from="", rcpts=(tagged,))
    res = ctx.layer("backscatter")
    assert res.has("BATV_UNKNOWN_KEY") and not res.has("BACKSCATTER_UNSIGNED_BOUNCE")
    assert ctx.facts["rewrite_recipients"] == {tagged: "bob@example.com"}
    # the next signed message makes a new key: the old tag is still one no key can judge
    sign("alice@example.com", store, now=now)
    assert unknown_key(tagged, store, BackscatterSettings(), now=now)
    again = make_ctx(DSN, pol, mail_from="", rcpts=(tagged,))
    assert again.layer("backscatter").has("BATV_UNKNOWN_KEY")


def test_unsigned_bounces_and_forged_tags_are_still_refused(store: MemoryStore) -> None:
    now = time.time()
    real = sign("bob@example.com", store, now=now - 10 * DAY)  # the key exists since 10 days
    forged = real[:10] + ("0" if real[10] != "0" else "1") + real[11:]  # another MAC, same key and day
    fresh_forged = sign("bob@example.com", MemoryStore(), now=now)  # a MAC of a key we never had
    pol = policy({"backscatter": {"mode": "on"}})
    for rcpt in ("bob@example.com", forged, fresh_forged):
        res = make_ctx(DSN, pol, mail_from="", rcpts=(rcpt,)).layer("backscatter")
        assert res.has("BACKSCATTER_UNSIGNED_BOUNCE") and not res.has("BATV_UNKNOWN_KEY"), rcpt
    assert not unknown_key("bob@example.com", store, BackscatterSettings())


def test_an_expired_tag_is_never_unknown(store: MemoryStore) -> None:
    now = time.time()
    old = sign("bob@example.com", store, now=now - 30 * DAY)
    store.delete(KEYS)
    assert not unknown_key(old, store, BackscatterSettings(), now=now)
