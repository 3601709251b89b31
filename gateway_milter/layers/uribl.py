"""URI blocklists (RFC 5782 section 2.3 domain lists, SURBL/URIBL style) on the hosts of the
URLs found in the body: de-obfuscated (``hxxp``, ``[.]``, numeric IPs), reduced to the
organisational domain (Public Suffix List), looked up concurrently in several zones with
weights, actions and return-code masks. IP hosts are looked up reversed in zones of kind
``ip`` or ``any``. The lookups start when end of message begins (``prefetch_at_eom``), so they
run while the other layers compute; ``check`` collects them (docs/layers/uribl.md). DNS
failures mean "unknown", never a listing.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from gateway_milter.antispam.dnslists import Zone, parse_zones, refusal, reversed_ip
from gateway_milter.antispam.saview import message_view
from gateway_milter.antispam.urls import org_domain, to_ascii, url_host
from gateway_milter.layers.dnsbl import PRIVATE_NETS
from gateway_milter.layers.lists import message_allowlisted
from gateway_milter.layers.base import action_rule, BaseSettings, check_reply, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.verdict import FailMode, QuarantineQueue, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext


@dataclass(frozen=True, slots=True)
class UriblSettings(BaseSettings):
    # e.g. [{"zone": "multi.surbl.org", "weight": 4, "mask": "0x08", "kind": "domain"}]
    zones: tuple[dict[str, Any], ...] = ()
    max_lookups: int = 20  # distinct domains/IPs per message (hostile input bound)
    skip_domains: tuple[str, ...] = ()  # never looked up (besides the local domains)
    exempt_allowlisted: bool = True  # allow-listed mail (the lists layer's allowlisted) is not looked up
    reject_code: str = "554"
    reject_enhanced: str = "5.7.1"
    reject_text: str = "Message refused: it links to a host listed by {zone}"

    # queries per message to the shared resolver (hostile-input bound): links x zones
    global_only_fields: ClassVar[frozenset[str]] = frozenset({"max_lookups"})

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        parse_zones(self.zones, "zones", "URIBL_")
        if not 1 <= self.max_lookups <= 200:
            raise SettingsError("max_lookups", "must be 1..200")
        check_reply(self.reject_code, self.reject_enhanced, self.reject_text.replace("{zone}", "x"))

    @property
    def parsed(self) -> tuple[Zone, ...]:
        return parse_zones(self.zones, "zones", "URIBL_")


def lookup_targets(uris: list[str], skip: Container[str], limit: int,
                   domains: bool = True, ips: bool = True) -> list[str]:
    """Organisational domains and IPs of the URLs, in order, deduplicated, bounded. Only the
    kinds some zone looks up count (``domains``, ``ips``): with domain-only zones, links to
    numeric hosts put first would otherwise use up ``limit`` and push the real domains out.
    A link is skipped when ``skip`` has its organisational domain, its host or a domain
    between the two (``www.partner.test`` or a hosted ``mail.example.com`` skips links to
    itself and its subdomains; their organisational domain was looked up)."""
    out: dict[str, None] = {}
    for u in uris:
        host = url_host(u)
        if not host:
            continue
        target = org_domain(host)
        if target in out:
            continue
        ip = _ip_of(target)
        if _skipped(host, target, skip, ip is not None):
            continue
        if (ip is not None and _internal(ip)) or not (ips if ip is not None else domains):
            continue
        out[target] = None
        if len(out) >= limit:
            break
    return list(out)


def _skipped(host: str, target: str, skip: Container[str], numeric: bool) -> bool:
    if target in skip:
        return True
    while not numeric and len(host) > len(target):  # the host and its parents above the target
        if host in skip:
            return True
        host = host.partition(".")[2]
    return False


@functools.lru_cache(maxsize=64)
def skip_names(entries: tuple[str, ...]) -> frozenset[str]:
    """``skip_domains`` as link hosts are compared: lower case, no trailing dot, an IDN in the
    A-labels a browser writes (``bücher.test`` is ``xn--bcher-kva.test``). Taken as written
    they never matched such a link, and its domain was sent to the lists."""
    out = set()
    for e in entries:
        d = str(e).strip().lower().rstrip(".")
        if d:
            out.add(d if d.isascii() else (to_ascii(d) or d))
    return frozenset(out)


class _Skip:
    """The skipped names: ``skip_domains`` and the local domains, without a set built of both
    for every message (a gateway may serve thousands of domains)."""

    __slots__ = ("domains", "names")

    def __init__(self, names: frozenset[str], domains: Container[str]) -> None:
        self.names, self.domains = names, domains

    def __contains__(self, name: object) -> bool:
        return name in self.names or name in self.domains


def _ip_of(target: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric link host is (None for a name)."""
    if not target[:1].isdigit() and ":" not in target:
        return None
    try:
        return ipaddress.ip_address(target)
    except ValueError:
        return None


def _internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A private, shared, link-local or unspecified address: nothing a public list can judge,
    and a lookup would tell the list's operator about the reader's own network (SpamAssassin's
    URIDNSBL skips them too). Loopback stays: lists publish 127.0.0.2 as their test entry."""
    return (ip.is_link_local or ip.is_unspecified
            or any(ip.version == n.version and ip in n for n in PRIVATE_NETS))


def _query_name(target: str, z: Zone) -> str | None:
    try:
        ip = ipaddress.ip_address(target)
    except ValueError:
        return None if z.kind == "ip" else f"{target}.{z.zone}"
    if z.kind == "domain":
        return None
    return f"{reversed_ip(ip)}.{z.zone}"


def _lookups(ctx: MessageContext, settings: UriblSettings,
             zones: tuple[Zone, ...]) -> tuple[list[str], list[tuple[str, Zone, str]]]:
    """The targets of a message and its lookups (target, zone, query name), in order."""
    skip = _Skip(skip_names(tuple(settings.skip_domains)), ctx.policy.domains)
    targets = lookup_targets(message_view(ctx).uris, skip, settings.max_lookups,
                             domains=any(z.kind != "ip" for z in zones), ips=any(z.kind != "domain" for z in zones))
    return targets, [(t, z, q) for t in targets for z in zones if (q := _query_name(t, z)) is not None]


def _asked(ctx: MessageContext, settings: UriblSettings) -> bool:
    """Whether the policy will ask for this layer's result: a zone that quarantines or refuses
    has a system rule; zones that only score are read by the scoring layer, which exempts some
    mail (authenticated, outbound, allow-listed). Links of mail nobody judges by them are not
    sent to the lists' servers in advance (an admin's Sieve test still runs the check)."""
    if settings.exempt_allowlisted and message_allowlisted(ctx):
        return False
    if any(z.action != "score" for z in settings.parsed):
        return True
    from gateway_milter import layers

    if "scoring" not in layers.available():
        return False
    from gateway_milter.layers.scoring import exemption

    scoring = ctx.policy.settings_for("scoring", ctx.policy_domain)
    return bool(scoring.enabled and "uribl" in scoring.layers and exemption(ctx, scoring) is None)


class UriblLayer(Layer[UriblSettings]):
    id = "uribl"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = UriblSettings
    budget_s = 8.0
    prefetch_at_eom = True
    title = "URI blocklists (URIBL)"
    description = "URI blocklists of domains and IPs linked from the body"

    def prefetch(self, ctx: MessageContext, settings: UriblSettings) -> None:
        """When end of message starts (``prefetch_at_eom``: the links are known): start
        every lookup ``check`` makes, so that the answers come while Bayes, the rules and the
        other layers compute."""
        zones = settings.parsed
        if not zones or not _asked(ctx, settings):
            return
        from gateway_milter.net.resolver import budget_for, get_resolver

        _, lookups = _lookups(ctx, settings, zones)
        res, budget = get_resolver(), budget_for(ctx)
        for _t, _z, q in lookups:
            res.prefetch(q, "A", budget)

    def check(self, ctx: MessageContext, settings: UriblSettings) -> LayerFindings:
        zones = settings.parsed
        if not zones:
            return LayerFindings({"skipped": "no zones"})
        if settings.exempt_allowlisted and message_allowlisted(ctx):
            return LayerFindings({"skipped": "allow-listed"})
        from gateway_milter.net.resolver import budget_for, get_resolver

        targets, lookups = _lookups(ctx, settings, zones)
        res, budget = get_resolver(), budget_for(ctx)
        # all in flight at once (those started by prefetch are joined), each answer then taken
        # from its own lookup: one that timed out is not sent again, link after link (20 links
        # to a zone that does not answer held the message 20 time-outs, the DNS budget spent)
        futures = [res.prefetch(q, "A", budget) for _t, _z, q in lookups]
        listed: dict[str, dict[str, list[str]]] = {}
        unknown: list[str] = []
        best: dict[int, tuple[Zone, str]] = {}  # zone entry -> its first listed target
        for (t, z, q), fut in zip(lookups, futures, strict=True):
            ans = res.wait(fut, q, "A", budget)
            if ans.temporary:
                unknown.append(q)
                continue
            if ans.status != "ok":
                continue
            if (code := refusal([str(a) for a in ans.records])) is not None:
                unknown.append(f"{q} (the list refused the query: {code})")
                continue
            codes = [str(a) for a in ans.records if z.accepts(str(a))]
            if codes:
                listed.setdefault(z.zone, {})[t] = codes
                # each entry counts once, whatever the number of its links listed (SpamAssassin's
                # URIBL rules too); entries sharing a symbol (one zone's bits with their own
                # weights) each count, as in the dnsbl layer: keyed on the symbol, only the entry
                # of the first listed link counted, so the order of the links set the score
                best.setdefault(id(z), (z, t))
        symbols = [self.symbol(z.symbol, z.weight, f"{t} listed by {z.zone}") for z, t in best.values()]
        if symbols:
            hosts = sorted({t for by_target in listed.values() for t in by_target})
            symbols.insert(0, self.symbol("URIBL_LISTED", 0.0, ", ".join(hosts)))
        if unknown:  # (facts stay out of the message log: the trace says the score may be short)
            shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            ctx.add_trace(self.id, "warning", f"no answer (unknown, not scored) for {shown}")
        return LayerFindings({"targets": targets, "listed": listed, "unknown": unknown}, tuple(symbols))

    def policy_rules(self, settings: UriblSettings) -> list[PolicyRule]:
        rules = []
        for z in settings.parsed:
            reply = Reply(settings.reject_code, settings.reject_enhanced, settings.reject_text.replace("{zone}", z.zone))
            rule = action_rule(f"uribl_{z.symbol.lower()}", z.symbol, z.action, reply, f"links listed by {z.zone}",
                               QuarantineQueue.USER)
            if rule is not None:
                rules.append(rule)
        return rules
