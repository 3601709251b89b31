"""Reverse DNS and HELO checks (RFC 1912 section 2.1, RFC 5321 section 4.1.4, RFC 8601 "iprev").

- ``RDNS_NONE``: the client address has no PTR record;
- ``FCRDNS_FAIL``: no PTR name resolves back to the client address (forward-confirmed
  reverse DNS, RFC 8601 section 3 "iprev");
- ``HELO_NO_RESOLVE``: the HELO name has no A/AAAA record;
- ``HELO_MISMATCH``: the HELO name resolves, but not to the client address;
- ``HELO_NOT_FQDN``: the HELO name is not a fully qualified domain (nor an address literal);
- ``HELO_LITERAL_MISMATCH``: an address literal ``[192.0.2.1]`` that is not the client;
- ``SENDER_DOMAIN_NO_MX``: the envelope sender domain has neither MX nor A/AAAA (RFC 5321
  section 5.1: it cannot receive replies).

Runs at MAIL FROM (all inputs known); lookups are prefetched at HELO. A temporary DNS error
never produces a symbol (fact ``temperror``), so a DNS outage cannot refuse mail.
Facts: ``ptr`` (names), ``fcrdns`` (bool), ``iprev`` (pass/fail/temperror for A-R),
``helo_addresses``, ``sender_domain_mx``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway_milter.auth.exemptions import action_rule, check_action, exemption, score_of
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule
from gateway_milter.net.resolver import budget_for, get_resolver
from gateway_milter.verdict import FailMode, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

DEFAULT_SCORES: dict[str, float] = {
    "RDNS_NONE": 1.0, "FCRDNS_FAIL": 0.5, "HELO_NO_RESOLVE": 0.5, "HELO_MISMATCH": 0.2,
    "HELO_NOT_FQDN": 1.0, "HELO_LITERAL_MISMATCH": 1.0, "SENDER_DOMAIN_NO_MX": 2.0,
}
SYMBOLS = tuple(DEFAULT_SCORES)
MAX_PTR = 10  # like RFC 7208 section 4.6.4 for "ptr": bound the forward lookups
_FQDN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RdnsSettings(BaseSettings):
    rdns_none_action: str = "score"
    fcrdns_fail_action: str = "score"
    helo_no_resolve_action: str = "score"
    helo_mismatch_action: str = "score"
    helo_not_fqdn_action: str = "score"
    helo_literal_mismatch_action: str = "score"
    sender_domain_no_mx_action: str = "score"
    check_sender_domain: bool = True
    scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        for sym in SYMBOLS:
            check_action(f"{sym.lower()}_action", getattr(self, f"{sym.lower()}_action"))


class ReverseDnsLayer(Layer[RdnsSettings]):
    id = "rdns"
    stage = Stage.MAIL
    prefetch_at_connect = True  # the PTR lookup; HELO and sender checks start at MAIL
    fail_mode = FailMode.UNKNOWN
    Settings = RdnsSettings
    budget_s = 10.0
    title = "Reverse DNS and HELO"
    description = "Reverse DNS, forward-confirmed reverse DNS, HELO and sender-domain checks"

    def prefetch(self, ctx: MessageContext, settings: RdnsSettings) -> None:
        res, budget = get_resolver(), budget_for(ctx)
        if ctx.conn.client_ip:
            ip = ctx.conn.ip
            if ip is not None:
                from dns.reversename import from_address

                res.prefetch(from_address(str(ip)).to_text(omit_final_dot=True), "PTR", budget)
        if ctx.conn.helo and _FQDN.match(ctx.conn.helo):
            res.prefetch(ctx.conn.helo, "A", budget)
            res.prefetch(ctx.conn.helo, "AAAA", budget)
        if ctx.sender_domain and settings.check_sender_domain:
            res.prefetch(ctx.sender_domain, "MX", budget)

    def check(self, ctx: MessageContext, settings: RdnsSettings) -> LayerFindings:
        def sym(name: str, detail: str = "") -> Any:
            return self.symbol(name, score_of(settings.scores, DEFAULT_SCORES, name), detail)

        why = exemption(ctx)
        if why:
            return LayerFindings({"exempt": why})
        ip = ctx.conn.ip
        if ip is None:
            return LayerFindings({"exempt": "no client address"})
        res, budget = get_resolver(), self.dns_budget(ctx)
        self.prefetch(ctx, settings)  # no-op when already in flight or cached
        facts: dict[str, Any] = {"temperror": []}
        symbols = []

        # PTR and forward confirmation
        ptr = res.query_ptr(str(ip), budget)
        names = [n.lower() for n in ptr.records][:MAX_PTR] if ptr.ok else []
        facts["ptr"] = names
        if ptr.temporary:
            facts["temperror"].append("ptr")
            facts["iprev"] = "temperror"
        elif not names:
            facts["iprev"] = "fail"
            symbols.append(sym("RDNS_NONE", str(ip)))
        else:
            rtype = "A" if ip.version == 4 else "AAAA"
            futs = [res.prefetch(n, rtype, budget) for n in names]
            confirmed, temp = False, False
            for f in futs:
                a = f.result(timeout=res.timeout + 1.0)
                temp = temp or a.temporary
                if a.ok and any(_same(ip, x) for x in a.records):
                    confirmed = True
            facts["fcrdns"] = confirmed
            facts["iprev"] = "pass" if confirmed else ("temperror" if temp else "fail")
            if temp and not confirmed:
                facts["temperror"].append("fcrdns")
            elif not confirmed:
                symbols.append(sym("FCRDNS_FAIL", ",".join(names)))

        # HELO
        helo = ctx.conn.helo.strip()
        lit = re.match(r"^\[(?:ipv6:)?([0-9a-f.:]+)\]$", helo, re.IGNORECASE)
        if lit:
            if not _same(ip, lit.group(1)):
                symbols.append(sym("HELO_LITERAL_MISMATCH", helo))
        elif helo and not _FQDN.match(helo.rstrip(".")):
            symbols.append(sym("HELO_NOT_FQDN", helo))
        elif helo:
            a4, a6 = res.query_addresses(helo, budget)
            addrs = (list(a4.records) if a4.ok else []) + (list(a6.records) if a6.ok else [])
            facts["helo_addresses"] = addrs
            if (a4.temporary or a6.temporary) and not addrs:
                facts["temperror"].append("helo")
            if not addrs and not (a4.temporary or a6.temporary):
                symbols.append(sym("HELO_NO_RESOLVE", helo))
            elif addrs and not any(_same(ip, x) for x in addrs):
                symbols.append(sym("HELO_MISMATCH", helo))

        # sender domain can receive mail (MX, else A/AAAA: RFC 5321 section 5.1)
        dom = ctx.sender_domain
        if settings.check_sender_domain and dom:
            mx = res.query_mx(dom, budget)
            if mx.ok and mx.records and not (len(mx.records) == 1 and mx.records[0][1] in ("", ".")):
                facts["sender_domain_mx"] = True
            elif mx.temporary:
                facts["temperror"].append("sender_mx")
            else:
                a4, a6 = res.query_addresses(dom, budget)
                if a4.ok or a6.ok:
                    facts["sender_domain_mx"] = True
                elif a4.temporary or a6.temporary:
                    facts["temperror"].append("sender_a")
                else:
                    facts["sender_domain_mx"] = False
                    symbols.append(sym("SENDER_DOMAIN_NO_MX", dom))
        return LayerFindings(facts, tuple(symbols))

    def policy_rules(self, settings: RdnsSettings) -> list[PolicyRule]:
        texts = {
            "RDNS_NONE": ("550", "5.7.25", "Client host has no reverse DNS"),
            "FCRDNS_FAIL": ("550", "5.7.25", "Client host reverse DNS does not match"),
            "HELO_NO_RESOLVE": ("550", "5.7.1", "HELO name does not resolve"),
            "HELO_MISMATCH": ("550", "5.7.1", "HELO name does not match the client address"),
            "HELO_NOT_FQDN": ("550", "5.5.2", "HELO must be a fully qualified domain name"),
            "HELO_LITERAL_MISMATCH": ("550", "5.7.1", "HELO address literal is not the client address"),
            "SENDER_DOMAIN_NO_MX": ("550", "5.1.8", "Sender domain cannot receive mail"),
        }
        rules = []
        for s in SYMBOLS:
            code, enh, text = texts[s]
            rule = action_rule(s.lower(), s, getattr(settings, f"{s.lower()}_action"), Reply(code, enh, text),
                               text)
            if rule:
                rules.append(rule)
        return rules


def _same(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        other = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(other, ipaddress.IPv6Address) and other.ipv4_mapped:
        other = other.ipv4_mapped
    return other == ip
