"""A sender on the allow list counts only when something other than the sender vouches for its
domain (``lists.verify_senders``, on by default): SPF pass for the envelope sender, or a valid
DKIM signature of the address's organisational domain for either address. An address alone is
the sender's own word: spam forging an allow-listed partner's address was exempt from every spam
layer (scoring, greylisting, SPF and DMARC's actions). Zone data through the resolver's test
seam, real signatures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.auth.keystore import KeyStore
from gateway_milter.context import MessageContext, Recipient
from gateway_milter.net import resolver as r
from gateway_milter.pipeline.runner import LayerRunner
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Stage
from tests.unit.auth.auth_helpers import make_ctx, message
from tests.unit.auth.test_auth_layers import signed

PARTNER_IP = "192.0.2.10"  # in partner.example's SPF record
FORGER_IP = "198.51.100.66"


@pytest.fixture()
def zone() -> Iterator[r.StaticBackend]:
    be = r.StaticBackend({("partner.example", "TXT"): ["v=spf1 ip4:192.0.2.0/28 -all"],
                          ("bounces.partner.example", "TXT"): ["v=spf1 ip4:192.0.2.0/28 -all"]})
    prev = r.set_resolver(r.Resolver(backend=be, timeout=5.0))
    yield be
    r.set_resolver(prev)


@pytest.fixture()
def keys(tmp_path: Path, zone: r.StaticBackend) -> KeyStore:
    ks = KeyStore(tmp_path / "dkim")
    zone.add("s1._domainkey.partner.example", "TXT", [ks.generate("partner.example", "s1", bits=1024)])
    zone.add("s1._domainkey.other.example", "TXT", [ks.generate("other.example", "s1", bits=1024)])
    return ks


def policy(entry: str, *, lists: dict[str, Any] | None = None, user_entry: bool = False) -> PolicySnapshot:
    doc: dict[str, Any] = {"domains": ["local.test"],
                           "settings": {"spf": {"mode": "on"}, "dkim": {"mode": "on"}, "lists": lists or {}}}
    doc["lists"] = [{"list": "allow", "kind": "sender", "value": entry,
                     **({"recipient": "bob@local.test"} if user_entry else {})}]
    return PolicySnapshot.from_document(doc)


def ctx_for(pol: PolicySnapshot, *, ip: str, mail_from: str, raw: bytes = b"", stage: Stage = Stage.EOM
            ) -> MessageContext:
    ctx = make_ctx(raw, ip=ip, helo="mx.partner.example", mail_from=mail_from, policy=pol)
    ctx.recipients.append(Recipient("bob@local.test", "local.test", True))
    ctx.policy_domain = "local.test"
    ctx.runner = LayerRunner()
    ctx.runner.enter_stage(stage)
    return ctx


def lists_of(ctx: MessageContext) -> tuple[set[str], bool]:
    res = ctx.layer("lists")
    return {s.name for s in res.symbols}, bool(res.fact("allowlisted"))


def test_an_envelope_sender_whose_spf_passes_is_allowed(zone: r.StaticBackend) -> None:
    ctx = ctx_for(policy("*@partner.example"), ip=PARTNER_IP, mail_from="<news@partner.example>", stage=Stage.MAIL)
    assert lists_of(ctx) == ({"ALLOWLIST_SENDER"}, True)
    assert ctx.facts.get("allowlisted") is True


def test_an_envelope_sender_of_a_subdomain_passing_spf_counts_for_its_organisation(zone: r.StaticBackend) -> None:
    ctx = ctx_for(policy("*@partner.example"), ip=PARTNER_IP, mail_from="<x@bounces.partner.example>",
                  raw=message(frm="news@partner.example"))
    assert lists_of(ctx) == ({"ALLOWLIST_SENDER"}, True)


def test_a_forged_envelope_sender_is_not_allowed(zone: r.StaticBackend) -> None:
    ctx = ctx_for(policy("*@partner.example"), ip=FORGER_IP, mail_from="<news@partner.example>", stage=Stage.MAIL)
    names, allowed = lists_of(ctx)
    assert names == {"ALLOWLIST_SENDER_UNVERIFIED"} and not allowed
    assert not ctx.facts.get("allowlisted")
    assert ctx.layer("lists").fact("allow_unverified") is True
    # and the scoring layer does not exempt it
    pol = ctx.policy
    eom = ctx_for(pol, ip=FORGER_IP, mail_from="<news@partner.example>", raw=message(frm="news@partner.example"))
    assert eom.layer("scoring").fact("exempt") is None


def test_a_forged_header_from_is_not_allowed(zone: r.StaticBackend, keys: KeyStore) -> None:
    raw = message(frm="Partner <news@partner.example>")
    ctx = ctx_for(policy("*@partner.example"), ip=FORGER_IP, mail_from="<bulk@spam.example>", raw=raw)
    assert lists_of(ctx) == ({"ALLOWLIST_SENDER_UNVERIFIED"}, False)


def test_a_header_from_signed_by_its_domain_is_allowed(zone: r.StaticBackend, keys: KeyStore) -> None:
    raw = signed(keys, message(frm="Partner <news@partner.example>"), domain="partner.example", selector="s1")
    ctx = ctx_for(policy("*@partner.example"), ip=FORGER_IP, mail_from="<bounce@esp.example>", raw=raw)
    assert lists_of(ctx) == ({"ALLOWLIST_SENDER"}, True)


def test_a_signature_of_another_domain_vouches_for_nothing(zone: r.StaticBackend, keys: KeyStore) -> None:
    raw = signed(keys, message(frm="Partner <news@partner.example>"), domain="other.example", selector="s1")
    ctx = ctx_for(policy("*@partner.example"), ip=FORGER_IP, mail_from="<bounce@esp.example>", raw=raw)
    assert lists_of(ctx) == ({"ALLOWLIST_SENDER_UNVERIFIED"}, False)


def test_a_signature_that_does_not_verify_vouches_for_nothing(zone: r.StaticBackend, keys: KeyStore) -> None:
    raw = signed(keys, message(frm="Partner <news@partner.example>"), domain="partner.example", selector="s1")
    raw = raw.replace(b"this is a test", b"this is a fake")
    ctx = ctx_for(policy("*@partner.example"), ip=FORGER_IP, mail_from="<bounce@esp.example>", raw=raw)
    assert lists_of(ctx) == ({"ALLOWLIST_SENDER_UNVERIFIED"}, False)


def test_nothing_vouches_when_spf_and_dkim_are_off(zone: r.StaticBackend, keys: KeyStore) -> None:
    doc = {"domains": ["local.test"], "settings": {"spf": {"mode": "off"}, "dkim": {"mode": "off"}},
           "lists": [{"list": "allow", "kind": "sender", "value": "*@partner.example"}]}
    raw = signed(keys, message(frm="news@partner.example"), domain="partner.example", selector="s1")
    ctx = ctx_for(PolicySnapshot.from_document(doc), ip=PARTNER_IP, mail_from="<news@partner.example>", raw=raw)
    assert lists_of(ctx) == ({"ALLOWLIST_SENDER_UNVERIFIED"}, False)


def test_verify_senders_off_allows_on_the_address_alone(zone: r.StaticBackend) -> None:
    pol = policy("*@partner.example", lists={"verify_senders": False})
    ctx = ctx_for(pol, ip=FORGER_IP, mail_from="<news@partner.example>", raw=message(frm="news@partner.example"))
    assert lists_of(ctx) == ({"ALLOWLIST_SENDER"}, True)


def test_an_ip_entry_needs_no_vouching(zone: r.StaticBackend) -> None:
    doc = {"domains": ["local.test"], "lists": [{"list": "allow", "kind": "ip", "value": FORGER_IP},
                                                {"list": "allow", "kind": "sender", "value": "*@partner.example"}]}
    ctx = ctx_for(PolicySnapshot.from_document(doc), ip=FORGER_IP, mail_from="<news@partner.example>",
                  raw=message(frm="news@partner.example"))
    names, allowed = lists_of(ctx)
    assert names == {"ALLOWLIST_IP"} and allowed  # (no UNVERIFIED beside an entry that allowed it)


def test_a_users_own_allow_entry_needs_vouching_too(zone: r.StaticBackend) -> None:
    pol = policy("*@partner.example", user_entry=True)
    raw = message(frm="news@partner.example", to="bob@local.test")
    forged = ctx_for(pol, ip=FORGER_IP, mail_from="<news@partner.example>", raw=raw)
    names, allowed = lists_of(forged)
    assert "ALLOWLIST_SENDER_UNVERIFIED" in names and not allowed
    assert forged.layer("lists").fact("recipients_exempt") is False
    real = ctx_for(pol, ip=PARTNER_IP, mail_from="<news@partner.example>", raw=raw)
    assert lists_of(real)[1] is True and real.layer("lists").fact("recipients_exempt") is True


# -- the Sieve test bulwark_list :allow counts an entry as the layer does -----------------------
def sieve_allows(ctx: MessageContext, kind: str) -> bool:
    from gateway_milter.sieve import MessageData, compile_script
    from gateway_milter.sieve.bulwark import GatewayHooks

    src = f'require ["vnd.bulwark", "fileinto"];\nif bulwark_list :allow "{kind}" {{ fileinto "allowed"; }}'
    res = compile_script(src).execute(MessageData.from_context(ctx), hooks=GatewayHooks(ctx))
    assert res.error is None, res.error
    return any(a.args.get("mailbox") == "allowed" for a in res.actions)


@pytest.mark.parametrize("kind", ["sender", "from"])
def test_the_sieve_list_test_needs_the_sender_vouched_for(zone: r.StaticBackend, kind: str) -> None:
    raw = message(frm="news@partner.example")
    pol = policy("*@partner.example")
    assert not sieve_allows(ctx_for(pol, ip=FORGER_IP, mail_from="<news@partner.example>", raw=raw), kind)
    assert sieve_allows(ctx_for(pol, ip=PARTNER_IP, mail_from="<news@partner.example>", raw=raw), kind)
    off = policy("*@partner.example", lists={"verify_senders": False})
    assert sieve_allows(ctx_for(off, ip=FORGER_IP, mail_from="<news@partner.example>", raw=raw), kind)


def test_the_sieve_list_test_allows_a_host_by_its_verified_name_only(zone: r.StaticBackend) -> None:
    from gateway_milter.context import ConnectionInfo

    doc = {"domains": ["local.test"], "lists": [{"list": "allow", "kind": "host", "value": "mx.partner.example"},
                                                {"list": "block", "kind": "host", "value": "mx.partner.example"}]}
    ctx = ctx_for(PolicySnapshot.from_document(doc), ip=FORGER_IP, mail_from="<x@spam.example>", raw=message())
    assert ctx.conn.helo == "mx.partner.example" and ctx.conn.verified_name != "mx.partner.example"
    assert not sieve_allows(ctx, "host")  # the HELO name is the client's own word
    src = 'require ["vnd.bulwark", "fileinto"];\nif bulwark_list :block "host" { fileinto "blocked"; }'
    from gateway_milter.sieve import MessageData, compile_script
    from gateway_milter.sieve.bulwark import GatewayHooks

    res = compile_script(src).execute(MessageData.from_context(ctx), hooks=GatewayHooks(ctx))
    assert [a.args.get("mailbox") for a in res.actions] == ["blocked"]  # a block matches the claim
    named = ctx_for(PolicySnapshot.from_document(doc), ip=FORGER_IP, mail_from="<x@spam.example>", raw=message())
    named.conn = ConnectionInfo(client_ip=FORGER_IP, helo="x", client_name="mx.partner.example")
    assert named.conn.verified_name == "mx.partner.example"
    assert sieve_allows(named, "host")
