"""A null-sender transaction with a recipient carrying a valid BATV tag and one without: the
bounce was judged as a whole at the end of the message and refused (550) for the untagged
recipient, so the genuine bounce to the tagged address was refused with it. The recipients of
the other kind than the first accepted one are now deferred at RCPT (452 4.5.3): the client
sends them again in a transaction of their own, where they are judged alone."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.layers.backscatter import sign
from gateway_milter.pipeline.transaction import Gateway
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Action
from tests.unit.sieve.helpers import only_layers
from tests.unit.spine.conftest import make_gateway

DSN = (b"From: MAILER-DAEMON@remote.test\r\nTo: alice@example.com\r\nSubject: Undelivered Mail\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
       b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n--b--\r\n")


def gateway(mode: str = "on", trusted: list[str] | None = None) -> Gateway:
    settings: dict[str, Any] = only_layers("lists", "direction", "relay", "backscatter")
    settings["backscatter"] = {"mode": mode}
    doc = {"settings": settings, "domains": [{"name": "example.com"}], "trusted_networks": trusted or [],
           "lists": [{"list": "block", "kind": "recipient", "value": "closed@example.com"}]}
    return make_gateway(doc)[0]


def transaction(gw: Gateway, sender: str, rcpts: list[str]) -> tuple[MessageContext, dict[str, str]]:
    ctx = gw.begin(ConnectionInfo(client_ip="203.0.113.9", helo="mx.remote.test", client_name="mx.remote.test"))
    gw.mail(ctx, sender)
    replies = {}
    for r in rcpts:
        d = gw.rcpt(ctx, r)
        replies[r] = str(d.reply) if d.reply else "250"
    return ctx, replies


def eom(gw: Gateway, ctx: MessageContext) -> Action:
    head, body = DSN.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        n, _, v = line.decode().partition(": ")
        ctx.add_header(n, v)
    ctx.body.write(body)
    return gw.eom(ctx).action


def test_an_untagged_recipient_after_a_tagged_one_is_deferred(store: MemoryStore) -> None:
    gw = gateway()
    tagged = sign("alice@example.com", store)
    other = sign("carol@example.com", store)
    ctx, replies = transaction(gw, "", [tagged, "bob@example.com", other, "postmaster@example.com"])
    assert replies[tagged] == "250" and replies[other] == "250"
    assert replies["bob@example.com"].startswith("452 4.5.3 "), replies
    assert replies["postmaster@example.com"] == "250"  # exempt: it receives bounces either way
    # the bounce is delivered to the tagged recipients, untagged
    assert eom(gw, ctx) is Action.ACCEPT
    assert ctx.facts["rewrite_recipients"] == {tagged: "alice@example.com", other: "carol@example.com"}
    # bob's copy, sent again on its own, is refused
    ctx, replies = transaction(gw, "", ["bob@example.com"])
    assert replies["bob@example.com"] == "250"
    assert eom(gw, ctx) is Action.REJECT


def test_a_tagged_recipient_after_an_untagged_one_is_deferred(store: MemoryStore) -> None:
    gw = gateway()
    sign("someone@example.com", store, now=time.time() - 5 * 86400)  # the key is 5 days old
    tagged = sign("alice@example.com", store)
    forged = tagged[:-len("=alice@example.com") - 1] + ("0" if tagged[14] != "0" else "1") + "=alice@example.com"
    assert forged != tagged  # a MAC the key did not make: refused as an untagged bounce is
    _, replies = transaction(gw, "", ["bob@example.com", forged, tagged])
    assert replies["bob@example.com"] == "250" and replies[forged] == "250"
    assert replies[tagged].startswith("452 4.5.3 "), replies


@pytest.mark.parametrize("case", ["with a sender", "scoring only", "internal client", "remote recipient"])
def test_nothing_is_deferred_where_no_bounce_is_refused(store: MemoryStore, case: str) -> None:
    gw = gateway(mode="score" if case == "scoring only" else "on",
                 trusted=["203.0.113.0/24"] if case == "internal client" else None)
    tagged = sign("alice@example.com", store)
    sender = "someone@remote.test" if case == "with a sender" else ""
    second = "dave@remote.test" if case == "remote recipient" else "bob@example.com"
    ctx, replies = transaction(gw, sender, [tagged, second])
    assert not any(r.startswith("452") for r in replies.values()), replies
    assert "bounce_recipients" not in ctx.facts or case == "remote recipient"


def test_a_recipient_the_policy_refuses_keeps_its_refusal(store: MemoryStore) -> None:
    # its answer is final now, not a deferral that only brings it back to be refused
    gw = gateway()
    tagged = sign("alice@example.com", store)
    _, replies = transaction(gw, "", [tagged, "closed@example.com", "bob@example.com"])
    assert replies["closed@example.com"].startswith("5"), replies
    assert replies["bob@example.com"].startswith("452 4.5.3 "), replies


def test_the_keys_are_read_once_per_transaction(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # every tagged recipient read them at RCPT, and the end of the message once more
    from gateway_milter.layers import backscatter
    reads: list[int] = []
    real = backscatter.stored_keys

    def counted(s: Any) -> list[dict[str, object]]:
        reads.append(1)
        return real(s)

    monkeypatch.setattr(backscatter, "stored_keys", counted)
    gw = gateway()
    tagged = [sign(f"{u}@example.com", store) for u in ("alice", "bob", "carol")]
    ctx, replies = transaction(gw, "", tagged)
    assert set(replies.values()) == {"250"}
    assert eom(gw, ctx) is Action.ACCEPT
    assert ctx.facts["rewrite_recipients"] == {t: t.rsplit("=", 1)[1] for t in tagged}
    assert len(reads) == 1


def test_the_end_of_the_message_judges_with_the_keys_the_recipients_were_accepted_with(store: MemoryStore) -> None:
    # keys lost between RCPT and the end (a store flushed): the tag that fixed the transaction
    # as one to deliver is not judged "unknown key" at the end while another was refused for it
    from gateway_milter.layers.backscatter import KEYS
    gw = gateway()
    tagged = sign("alice@example.com", store)
    ctx, replies = transaction(gw, "", [tagged, "bob@example.com"])
    assert replies["bob@example.com"].startswith("452 4.5.3 ")
    store.delete(KEYS)
    assert eom(gw, ctx) is Action.ACCEPT
    assert ctx.layer("backscatter").facts["valid_tags"] == {tagged: "alice@example.com"}
