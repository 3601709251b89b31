"""A recipient on the allow list (abuse@, postmaster@: addresses that must receive spam reports
and complaints) gets its mail unfiltered for spam, as a recipient "whitelist" does in other
gateways: the message is exempt from the spam layers when every recipient is so listed (or
exempt otherwise: anti-spam off, its own vouched sender entry), and greylisting skips that
recipient. Before, such an entry only cancelled a block of the same recipient."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway_milter.context import MessageContext, Recipient
from gateway_milter.layers.greylist import GreylistLayer, GreylistSettings
from gateway_milter.net import resolver as r
from gateway_milter.pipeline.runner import LayerRunner
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Stage
from tests.unit.auth.auth_helpers import make_ctx, message

FORGER_IP = "198.51.100.66"


@pytest.fixture(autouse=True)
def zone() -> Iterator[r.StaticBackend]:
    be = r.StaticBackend({("partner.example", "TXT"): ["v=spf1 ip4:192.0.2.0/28 -all"]})
    prev = r.set_resolver(r.Resolver(backend=be, timeout=5.0))
    yield be
    r.set_resolver(prev)


def policy(*extra: dict[str, Any], lists: dict[str, Any] | None = None) -> PolicySnapshot:
    return PolicySnapshot.from_document({
        "domains": ["local.test"], "settings": {"spf": {"mode": "on"}, "lists": lists or {}},
        "lists": [{"list": "allow", "kind": "recipient", "value": "abuse@local.test"}, *extra]})


def ctx_for(pol: PolicySnapshot, rcpts: tuple[str, ...], stage: Stage = Stage.EOM) -> MessageContext:
    ctx = make_ctx(message(frm="spam@partner.example", to=", ".join(rcpts)), ip=FORGER_IP,
                   mail_from="<spam@partner.example>", policy=pol)
    for a in rcpts:
        ctx.recipients.append(Recipient(a, "local.test", True))
    ctx.policy_domain = "local.test"
    ctx.runner = LayerRunner()
    ctx.runner.enter_stage(stage)
    return ctx


def test_mail_only_to_an_allow_listed_recipient_is_exempt_from_the_spam_layers() -> None:
    ctx = ctx_for(policy(), ("abuse@local.test",))
    res = ctx.layer("lists")
    assert res.fact("allowlisted") is True and res.fact("recipients_exempt") is True
    assert ctx.layer("scoring").fact("exempt")


def test_another_recipient_keeps_the_message_filtered() -> None:
    ctx = ctx_for(policy(), ("abuse@local.test", "bob@local.test"))
    res = ctx.layer("lists")
    assert res.fact("allowlisted") is False and res.fact("recipients_exempt") is False
    assert not ctx.layer("scoring").fact("exempt")


def test_beside_a_users_own_sender_entry_the_claim_still_needs_vouching() -> None:
    own = {"list": "allow", "kind": "sender", "value": "*@partner.example", "recipient": "bob@local.test"}
    ctx = ctx_for(policy(own), ("abuse@local.test", "bob@local.test"))  # the forger's IP: SPF fails
    res = ctx.layer("lists")
    assert res.fact("recipients_exempt") is False
    assert "ALLOWLIST_SENDER_UNVERIFIED" in {s.name for s in res.symbols}
    # without verify_senders the user's entry counts: both recipients exempt
    ctx = ctx_for(policy(own, lists={"verify_senders": False}), ("abuse@local.test", "bob@local.test"))
    assert ctx.layer("lists").fact("recipients_exempt") is True


def test_greylisting_skips_the_allow_listed_recipient_only() -> None:
    ctx = ctx_for(policy(), ("abuse@local.test", "bob@local.test"), stage=Stage.RCPT)
    layer, s = GreylistLayer(), GreylistSettings(mode="on")
    assert layer.exemption(ctx, ctx.recipients[0], s) == "allow-listed recipient"
    assert layer.exemption(ctx, ctx.recipients[1], s) is None
    # lists switched off: its entries exempt nothing
    off = ctx_for(policy(lists={"mode": "off"}), ("abuse@local.test",), stage=Stage.RCPT)
    assert layer.exemption(off, off.recipients[0], s) is None
