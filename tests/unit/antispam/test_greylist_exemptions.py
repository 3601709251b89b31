"""Each greylisting exemption, with a control: the same message is deferred when the
exemption is not set, so a test fails if the layer ignored the setting. And the IPv6
client network (``netmask_v6``) the triplet is made of."""

from __future__ import annotations

from typing import Any

from gateway_milter.context import MessageContext
from gateway_milter.net.resolver import StaticBackend
from gateway_milter.pipeline.runner import LayerResult
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg

IP = "203.0.113.7"  # make_ctx's client
SENDER = "a@sender.test"


def grey(ctx: MessageContext) -> LayerResult:
    assert ctx.runner is not None
    return ctx.runner.recipient_result(ctx, "greylist", ctx.recipients[0])


def judged(greylist: dict[str, Any], *, lists: list[dict[str, str]] | None = None,
           other: dict[str, Any] | None = None, **kw: Any) -> LayerResult:
    pol = PolicySnapshot.from_document({"settings": {"greylist": {"mode": "on", **greylist}, **(other or {})},
                                        "domains": ["example.com"], "lists": lists or []})
    return grey(make_ctx(msg(), pol, stage=Stage.RCPT, **kw))


def assert_exempt(res: LayerResult, reason: str) -> None:
    assert res.has("GREYLIST_EXEMPT") and not res.has("GREYLIST_DEFER"), res.facts
    assert res.fact("reason") == reason


def assert_deferred(res: LayerResult) -> None:
    assert res.has("GREYLIST_DEFER"), res.facts


def test_it_exempts_a_sender_whose_spf_passes(store: MemoryStore, dns: StaticBackend) -> None:
    dns.add("sender.test", "TXT", ["v=spf1 ip4:203.0.113.0/24 -all"])
    spf = {"spf": {"mode": "on"}}
    assert_exempt(judged({"exempt_spf_pass": True}, other=spf), "SPF pass")
    assert_deferred(judged({"exempt_spf_pass": False}, other=spf))


def test_it_does_not_exempt_a_sender_whose_spf_fails(store: MemoryStore, dns: StaticBackend) -> None:
    dns.add("sender.test", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"])
    assert_deferred(judged({"exempt_spf_pass": True}, other={"spf": {"mode": "on"}}))


def test_it_exempts_listed_networks(store: MemoryStore) -> None:
    assert_exempt(judged({"exempt_networks": ["203.0.113.0/24"]}), "exempt network")
    assert_deferred(judged({"exempt_networks": ["198.51.100.0/24"]}))
    assert_exempt(judged({"exempt_networks": ["2001:db8::/32"]}, ip="2001:db8:5::1"), "exempt network")
    assert_deferred(judged({"exempt_networks": ["2001:db8::/32"]}))  # an IPv6 entry never matches IPv4


def test_it_exempts_listed_senders_by_address_and_domain(store: MemoryStore) -> None:
    assert_exempt(judged({"exempt_senders": ["A@Sender.test"]}), "exempt sender")
    assert_exempt(judged({"exempt_senders": ["@sender.test"]}), "exempt sender")
    assert_exempt(judged({"exempt_senders": ["@sender.test"]}, mail_from="prvs=1234abcdef=a@sender.test"),
                  "exempt sender")  # BATV tag removed first
    assert_deferred(judged({"exempt_senders": ["b@sender.test", "@other.test"]}))


def test_it_exempts_listed_recipients_by_address_and_domain(store: MemoryStore) -> None:
    assert_exempt(judged({"exempt_recipients": ["Bob@Example.com"]}), "exempt recipient")
    assert_exempt(judged({"exempt_recipients": ["@example.com"]}), "exempt recipient")
    assert_deferred(judged({"exempt_recipients": ["carol@example.com"]}))


def test_it_exempts_allow_listed_senders_unless_told_not_to(store: MemoryStore, dns: StaticBackend) -> None:
    dns.add("sender.test", "TXT", ["v=spf1 ip4:203.0.113.0/24 -all"])  # the sender's domain vouches for it
    allow = [{"list": "allow", "kind": "sender", "value": SENDER}]
    spf = {"spf": {"mode": "on"}}
    assert_exempt(judged({}, lists=allow, other=spf), "allow-listed")  # exempt_allowlisted is on by default
    assert_deferred(judged({"exempt_allowlisted": False}, lists=allow, other=spf))
    assert_deferred(judged({}))
    allow_ip = [{"list": "allow", "kind": "ip", "value": "203.0.113.0/24"}]
    assert_exempt(judged({}, lists=allow_ip), "allow-listed")


def test_it_makes_the_ipv6_triplet_of_the_client_64(store: MemoryStore) -> None:
    # delay 0: the second attempt of a triplet passes at once
    g = {"delay": 0, "auto_pass_after": 0}
    assert grey_state(judged(g, ip="2001:db8:1:2::10")) == "new"
    assert grey_state(judged(g, ip="2001:db8:1:2:ffff::99")) == "passed"  # same /64: the same triplet
    assert grey_state(judged(g, ip="2001:db8:1:3::10")) == "new"  # another /64


def test_it_widens_the_ipv6_triplet_with_a_shorter_netmask(store: MemoryStore) -> None:
    g = {"delay": 0, "auto_pass_after": 0, "netmask_v6": 48}
    assert grey_state(judged(g, ip="2001:db8:1:2::10")) == "new"
    assert grey_state(judged(g, ip="2001:db8:1:3::10")) == "passed"  # same /48
    assert grey_state(judged(g, ip="2001:db8:2:2::10")) == "new"


def test_it_masks_ipv4_clients_to_netmask_v4(store: MemoryStore) -> None:
    g = {"delay": 0, "auto_pass_after": 0, "netmask_v4": 24}
    assert grey_state(judged(g, ip="192.0.2.1")) == "new"
    assert grey_state(judged(g, ip="192.0.2.200")) == "passed"
    assert grey_state(judged(g, ip="192.0.3.1")) == "new"


def grey_state(res: LayerResult) -> str:
    return str(res.fact("greylist"))


def test_an_allow_listed_address_alone_exempts_nothing(store: MemoryStore, dns: StaticBackend) -> None:
    """The envelope sender is the client's word: an allow entry counts where the sender's SPF
    passes (lists.verify_senders, on by default), else a forger of a partner's address skipped
    greylisting and every spam layer."""
    dns.add("sender.test", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"])  # not this client
    allow = [{"list": "allow", "kind": "sender", "value": SENDER}]
    spf = {"spf": {"mode": "on"}}
    assert_deferred(judged({}, lists=allow, other=spf))
    assert_deferred(judged({}, lists=allow))  # SPF off: nothing vouches for it either
    assert_exempt(judged({}, lists=allow, other={**spf, "lists": {"verify_senders": False}}), "allow-listed")
