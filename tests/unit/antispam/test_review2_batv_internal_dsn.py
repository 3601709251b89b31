"""A delivery status notification from an internal sender (a trusted network's mail server, an
authenticated client) is no backscatter: the doc refuses *inbound* DSNs without a valid tag, but
the layer judged every null-sender message to a local user, so the bounce an internal server
makes for a local user's message (never signed: local mail is not) was refused with 550 and lost."""

from __future__ import annotations

from gateway_milter.layers.backscatter import sign
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Direction
from tests.unit.antispam.helpers import make_ctx, msg, policy

DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')


def test_it_does_not_refuse_a_dsn_from_a_trusted_network(store: MemoryStore) -> None:
    sign("alice@example.com", store)  # a key exists: tags are judged
    pol = policy({"backscatter": {"mode": "on"}}, trusted=["10.0.0.0/8"])
    ctx = make_ctx(DSN, pol, ip="10.1.2.3", mail_from="", rcpts=("bob@example.com",), direction=Direction.LOCAL)
    res = ctx.layer("backscatter")
    assert not res.has("BACKSCATTER_UNSIGNED_BOUNCE")


def test_it_does_not_refuse_a_dsn_from_an_authenticated_client(store: MemoryStore) -> None:
    sign("alice@example.com", store)
    pol = policy({"backscatter": {"mode": "on"}})
    ctx = make_ctx(DSN, pol, mail_from="", rcpts=("bob@example.com",), auth="app", direction=Direction.LOCAL)
    assert not ctx.layer("backscatter").has("BACKSCATTER_UNSIGNED_BOUNCE")


def test_it_still_refuses_an_untagged_dsn_from_outside(store: MemoryStore) -> None:
    sign("alice@example.com", store)
    pol = policy({"backscatter": {"mode": "on"}}, trusted=["10.0.0.0/8"])
    res = make_ctx(DSN, pol, mail_from="", rcpts=("bob@example.com",)).layer("backscatter")
    assert res.has("BACKSCATTER_UNSIGNED_BOUNCE")


def test_it_still_untags_a_tagged_recipient_of_an_internal_dsn(store: MemoryStore) -> None:
    tagged = sign("bob@example.com", store)
    pol = policy({"backscatter": {"mode": "on"}}, trusted=["10.0.0.0/8"])
    ctx = make_ctx(DSN, pol, ip="10.1.2.3", mail_from="", rcpts=(tagged,), direction=Direction.LOCAL)
    ctx.layer("backscatter")
    assert ctx.facts.get("rewrite_recipients") == {tagged: "bob@example.com"}
