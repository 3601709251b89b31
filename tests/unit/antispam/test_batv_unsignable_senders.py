"""Senders a tag cannot go in front of are sent unsigned: a quoted local part (the tag made it
invalid syntax: ``prvs=...="john doe"@example.com``) and one whose tagged form would pass RFC
5321's 64 octets (remote servers refuse such a MAIL FROM, so the message was not delivered).
A bounce to such an address is then not refused for want of a tag."""

from __future__ import annotations

from gateway_milter.layers.backscatter import MAX_LOCAL_PART, TAG_LENGTH, sign
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy

DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')
LONGEST = "a" * (MAX_LOCAL_PART - TAG_LENGTH)  # 48: tagged, exactly 64


def test_it_does_not_sign_what_a_tag_would_make_invalid(store: MemoryStore) -> None:
    assert sign('"john doe"@example.com', store) == '"john doe"@example.com'
    too_long = LONGEST + "b@example.com"
    assert sign(too_long, store) == too_long
    tagged = sign(LONGEST + "@example.com", store)
    assert tagged.startswith("prvs=") and len(tagged.rpartition("@")[0]) == MAX_LOCAL_PART


def test_a_bounce_to_an_unsignable_address_is_not_refused(store: MemoryStore) -> None:
    sign("alice@example.com", store)  # a key exists: tags are judged
    pol = policy({"backscatter": {"mode": "on"}})
    for rcpt in (LONGEST + "b@example.com", '"john doe"@example.com'):
        res = make_ctx(DSN, pol, mail_from="", rcpts=(rcpt,)).layer("backscatter")
        assert not res.has("BACKSCATTER_UNSIGNED_BOUNCE"), rcpt
    # the control: an address that is signed needs its tag
    res = make_ctx(DSN, pol, mail_from="", rcpts=("bob@example.com",)).layer("backscatter")
    assert res.has("BACKSCATTER_UNSIGNED_BOUNCE")
