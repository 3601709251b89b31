"""A recipient's own allow entry (My Account) exempts that recipient from greylisting where the
sender is vouched for (SPF pass; docs/layers/lists.md: "only SPF can vouch" before the message,
"the same holds for users' own allow entries"), as a domain or global entry does. Greylisting
looked at the message-level "allowlisted" fact only, which a user's entry sets at end of message
and only when every recipient agrees: a sender the user had allow-listed was always delayed."""

from __future__ import annotations

from typing import Any

from gateway_milter.context import MessageContext
from gateway_milter.net.resolver import StaticBackend
from gateway_milter.pipeline.runner import LayerResult
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg

SENDER = "a@sender.test"  # make_ctx's envelope sender, from 203.0.113.7
SPF = {"spf": {"mode": "on"}}


def judged(*, greylist: dict[str, Any] | None = None, other: dict[str, Any] | None = None,
           owner: str = "bob@example.com") -> dict[str, LayerResult]:
    doc = {"settings": {"greylist": {"mode": "on", **(greylist or {})}, **(other or SPF)}, "domains": ["example.com"],
           "lists": [{"list": "allow", "kind": "sender", "value": SENDER, "recipient": owner}]}
    ctx: MessageContext = make_ctx(msg(), PolicySnapshot.from_document(doc), stage=Stage.RCPT,
                                   rcpts=("bob@example.com", "carol@example.com"))
    assert ctx.runner is not None
    return {r.address: ctx.runner.recipient_result(ctx, "greylist", r) for r in ctx.recipients}


def test_the_recipients_own_allow_entry_exempts_that_recipient(store: MemoryStore, dns: StaticBackend) -> None:
    dns.add("sender.test", "TXT", ["v=spf1 ip4:203.0.113.0/24 -all"])
    res = judged()
    assert res["bob@example.com"].fact("reason") == "allow-listed by the recipient"
    assert res["carol@example.com"].has("GREYLIST_DEFER")  # not hers


def test_it_needs_the_sender_vouched_for(store: MemoryStore, dns: StaticBackend) -> None:
    dns.add("sender.test", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"])  # not this client: a forgery
    assert judged()["bob@example.com"].has("GREYLIST_DEFER")
    assert judged(other={"lists": {"verify_senders": False}})["bob@example.com"].fact("greylist") == "exempt"


def test_it_honours_exempt_allowlisted_off(store: MemoryStore, dns: StaticBackend) -> None:
    dns.add("sender.test", "TXT", ["v=spf1 ip4:203.0.113.0/24 -all"])
    assert judged(greylist={"exempt_allowlisted": False})["bob@example.com"].has("GREYLIST_DEFER")
