"""DNS blocklists of the connecting client address (RFC 5782), IPv4 and IPv6.

Several zones, each with a weight (the symbol's score), an action (score / quarantine /
refuse) and return-code filters. Lookups start at connect (``prefetch``, the global zones),
at MAIL FROM (an internal sender's domain's zones) and at the RCPT that sets inbound mail's
policy domain (that domain's own zones), on the shared resolver's thread pool, concurrently;
``check`` collects them (docs/layers/dnsbl.md). A DNS failure or time-out means "unknown" for
that zone (fact ``unknown``), never a listing and never a crash.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway_milter.antispam.dnslists import Zone, parse_zones, refusal, reversed_ip
from gateway_milter.layers.base import action_rule, BaseSettings, check_reply, Layer, LayerFindings, PolicyRule
from gateway_milter.layers.lists import message_allowlisted, recipient_allowed
from gateway_milter.verdict import FailMode, QuarantineQueue, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient
    from gateway_milter.pipeline.runner import LayerResult


@dataclass(frozen=True, slots=True)
class DnsblSettings(BaseSettings):
    # e.g. [{"zone": "zen.spamhaus.org", "weight": 5, "action": "refuse", "codes": ["127.0.0.2-127.0.0.11"]}]
    zones: tuple[dict[str, Any], ...] = ()
    skip_private: bool = True  # loopback/private/link-local clients are never looked up
    exempt_authenticated: bool = True
    exempt_trusted_networks: bool = True
    # allow-listed mail (the client, its host or a vouched sender allowed: no zone judges it), as
    # the lists promise
    exempt_allowlisted: bool = True
    reject_code: str = "554"
    reject_enhanced: str = "5.7.1"
    reject_text: str = "Service unavailable; client host listed by {zone}"

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        parse_zones(self.zones, "zones", "DNSBL_")
        check_reply(self.reject_code, self.reject_enhanced, self.reject_text.replace("{zone}", "x"))

    @property
    def parsed(self) -> tuple[Zone, ...]:
        return parse_zones(self.zones, "zones", "DNSBL_")


# RFC 1918, RFC 6598 (CGN) and RFC 4193 (ULA): never on public lists. Documentation ranges
# (RFC 5737) are looked up, which lets tests use them.
PRIVATE_NETS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                        "100.64.0.0/10", "fc00::/7"))


def resolver() -> Any:
    from gateway_milter.net.resolver import get_resolver

    return get_resolver()


def _skip(ctx: MessageContext, s: DnsblSettings) -> str | None:
    ip = ctx.conn.ip
    if ip is None:
        return "no client address"
    if s.skip_private and (ip.is_loopback or ip.is_link_local or ip.is_unspecified
                           or any(ip.version == n.version and ip in n for n in PRIVATE_NETS)):
        return "private address"
    if s.exempt_authenticated and ctx.conn.auth_user:
        return "authenticated"
    if s.exempt_trusted_networks and ctx.policy.is_trusted_ip(ip):
        return "trusted network"
    return None


def recipient_exempt(ctx: MessageContext, rcpt: Recipient) -> bool:
    """Whether the zones' refusal spares this recipient: on the recipient allow list
    (``postmaster@``, ``abuse@``: a listed host's admin must be able to reach them) or its user
    switched anti-spam off, with ``exempt_allowlisted`` on. The zones still judge the client
    once for the message; a recipient exempt is accepted at RCPT, and when every recipient is,
    end of message judges again and finds the message allow-listed (the lists layer's
    ``recipients_exempt``)."""
    settings = ctx.policy.settings_for("dnsbl", ctx.policy_domain)
    if not settings.enabled or not settings.exempt_allowlisted:
        return False
    return rcpt.plain.lower() in ctx.policy.antispam_disabled or recipient_allowed(ctx, rcpt) is not None


class DnsblLayer(Layer[DnsblSettings]):
    id = "dnsbl"
    stage = Stage.CONNECT
    fail_mode = FailMode.UNKNOWN
    Settings = DnsblSettings
    budget_s = 8.0
    prefetch_at_connect = True
    title = "DNS blocklists (DNSBL)"
    description = "DNS blocklists of the client IP address (IPv4 and IPv6)"

    def prefetch(self, ctx: MessageContext, settings: DnsblSettings) -> None:
        if not settings.enabled or _skip(ctx, settings):
            return
        from gateway_milter.net.resolver import budget_for

        ip = ctx.conn.ip
        assert ip is not None
        res, budget = resolver(), budget_for(ctx)
        for z in settings.parsed:
            res.prefetch(f"{reversed_ip(ip)}.{z.zone}", "A", budget)

    def rechecks(self, ctx: MessageContext, result: LayerResult) -> bool:
        # a listed client whose recipients are all exempt (accepted at RCPT for that): judged
        # again, the message is allow-listed and no zone's rule acts on it
        return bool(result.symbols) and bool(ctx.recipients) and all(recipient_exempt(ctx, r) for r in ctx.recipients)

    def check(self, ctx: MessageContext, settings: DnsblSettings) -> LayerFindings:
        why = _skip(ctx, settings)
        if why:
            return LayerFindings({"skipped": why})
        if settings.exempt_allowlisted and message_allowlisted(ctx):
            return LayerFindings({"skipped": "allow-listed"})
        ip = ctx.conn.ip
        assert ip is not None
        res, budget = resolver(), self.dns_budget(ctx)  # (the layer's own time)
        listed: dict[str, list[str]] = {}
        unknown: list[str] = []
        symbols = []
        # every zone's lookup in flight first (joined where prefetch started it), then each
        # answer taken from its own lookup: one that timed out is not sent again and waited
        # for once more, zone after zone (4 dead zones held RCPT for 4 time-outs)
        names = [f"{reversed_ip(ip)}.{z.zone}" for z in settings.parsed]
        futures = [res.prefetch(q, "A", budget) for q in names]
        for z, q, fut in zip(settings.parsed, names, futures, strict=True):
            ans = res.wait(fut, q, "A", budget)
            if ans.temporary:
                unknown.append(z.zone)
                continue
            if ans.status != "ok":
                continue
            if (code := refusal([str(a) for a in ans.records])) is not None:
                unknown.append(f"{z.zone} (the list refused the query: {code})")
                continue
            codes = [str(a) for a in ans.records if z.accepts(str(a))]
            if codes:
                # (two entries may query one zone, ZEN's SBL and PBL codes say: each adds its codes)
                have = listed.setdefault(z.zone, [])
                have += [c for c in codes if c not in have]
                symbols.append(self.symbol(z.symbol, z.weight, f"{ip} listed by {z.zone} ({', '.join(codes)})"))
        if listed:
            symbols.insert(0, self.symbol("DNSBL_LISTED", 0.0, ", ".join(listed)))
        if unknown:  # (facts stay out of the message log: the trace says the score may be short)
            ctx.add_trace(self.id, "warning", f"no answer (unknown, not scored) from {', '.join(unknown)}")
        return LayerFindings({"ip": str(ip), "listed": listed, "unknown": unknown}, tuple(symbols))

    def policy_rules(self, settings: DnsblSettings) -> list[PolicyRule]:
        rules = []
        for z in settings.parsed:
            reply = Reply(settings.reject_code, settings.reject_enhanced, settings.reject_text.replace("{zone}", z.zone))
            rule = action_rule(f"dnsbl_{z.symbol.lower()}", z.symbol, z.action, reply, f"client listed by {z.zone}",
                               QuarantineQueue.USER)
            if rule is not None:
                rules.append(rule)
        return rules


