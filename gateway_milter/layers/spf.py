"""SPF (RFC 7208) for the MAIL FROM and HELO identities, with pyspf over the gateway resolver.

Runs at MAIL FROM (the TXT lookups are prefetched as soon as the sender is known). pyspf
enforces the 10 DNS-mechanism and 2 void-lookup limits (RFC 7208 section 4.6.4); every DNS
query goes through :mod:`gateway_milter.net.resolver` and counts against the message's DNS
budget. A timeout or SERVFAIL gives ``temperror`` (symbol ``SPF_TEMPERROR``), never a pass.

Symbols: ``SPF_PASS``, ``SPF_FAIL``, ``SPF_SOFTFAIL``, ``SPF_NEUTRAL``, ``SPF_NONE``,
``SPF_TEMPERROR``, ``SPF_PERMERROR`` for the MAIL FROM identity (for the null sender the HELO
identity stands in, RFC 7208 section 2.4) and ``SPF_HELO_PASS``/``SPF_HELO_FAIL``/
``SPF_HELO_SOFTFAIL``/``SPF_HELO_NONE``/... for HELO.
Facts: ``result``, ``domain``, ``identity`` (mailfrom|helo), ``explanation``, ``helo_result``,
``exempt`` (reason), ``lookups``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING, Any

import spf

from gateway_milter.auth.dnsadapt import spf_lookup
from gateway_milter.auth.exemptions import action_rule, check_action, exemption, score_of
from gateway_milter.context import split_address
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule
from gateway_milter.net.resolver import DnsBudget, Resolver, budget_for, get_resolver
from gateway_milter.verdict import FailMode, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
DEFAULT_SCORES: dict[str, float] = {
    "SPF_PASS": -0.5, "SPF_FAIL": 3.0, "SPF_SOFTFAIL": 1.0, "SPF_NEUTRAL": 0.0, "SPF_NONE": 0.5,
    "SPF_TEMPERROR": 0.0, "SPF_PERMERROR": 1.0,
    "SPF_HELO_PASS": 0.0, "SPF_HELO_FAIL": 1.0, "SPF_HELO_SOFTFAIL": 0.5, "SPF_HELO_NEUTRAL": 0.0,
    "SPF_HELO_NONE": 0.0, "SPF_HELO_TEMPERROR": 0.0, "SPF_HELO_PERMERROR": 0.0,
}


@dataclass(frozen=True, slots=True)
class SpfSettings(BaseSettings):
    fail_action: str = "score"  # score | refuse | quarantine | tempfail
    softfail_action: str = "score"
    permerror_action: str = "score"
    temperror_action: str = "score"
    helo_fail_action: str = "score"
    check_helo: bool = True
    exempt_allowlisted: bool = True
    exempt_authenticated: bool = True
    exempt_trusted: bool = True
    lookup_timeout_s: float = 20.0  # RFC 7208 section 4.6.4: at least 20 s for the whole check
    scores: dict[str, float] = field(default_factory=dict)
    reject_text: str = "SPF check failed for {domain}"

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        for name in ("fail_action", "softfail_action", "permerror_action", "temperror_action", "helo_fail_action"):
            check_action(name, getattr(self, name))


class _Query(spf.query):  # type: ignore[misc]
    """pyspf's query with its DNS routed through the gateway resolver (no global patching)."""

    querytime: float
    timeout: float

    def __init__(self, *args: Any, lookup: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._lookup = lookup

    def validated_ptrs(self) -> list[str]:
        # RFC 7208 section 5.5: a DNS error on the A lookup of one PTR name skips that name
        # (pyspf would turn it into temperror for the whole check).
        out = []
        for p in self.dns_ptr(self.i)[:spf.MAX_PTR]:
            try:
                if self.cidrmatch(self.dns_a(p, self.A), self.cidrmax):
                    out.append(p)
            except spf.TempError:
                continue
        return out

    def dns(self, name: str, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        # Same algorithm as spf.query.dns (cache, CNAME chains, void-lookup count) with
        # DNSLookup replaced by the resolver adapter.
        if not name:
            raise spf.PermError("Invalid query: empty name")
        name = str(name).rstrip(".")
        if not reduce(lambda x, y: x and 0 < len(y) < 64, name.split("."), True):
            return []
        name = name.lower()
        result = self.cache.get((name, qtype), [])
        if result:
            return list(result)
        cnamek = (name, "CNAME")
        cname = self.cache.get(cnamek)
        if cname:
            cname = cname[0]
        else:
            if self.querytime < 0:
                raise spf.TempError("DNS Error: exceeded max query lookup time")
            timeout = self.querytime if 0 < self.querytime < self.timeout else self.timeout
            then = time.time()
            for k, v in self._lookup(name, qtype, self.strict, timeout):
                k = (k[0].lower(), k[1])
                if k == cnamek:
                    cname = v
                if k[1] == "CNAME" or (qtype, k[1]) in spf.query.SAFE2CACHE:
                    self.cache.setdefault(k, []).append(v)
            result = self.cache.get((name, qtype), [])
            if self.querytime > 0:
                self.querytime = self.querytime - (time.time() - then)
        if not result and cname:
            cnames = cnames or {}
            if len(cnames) >= spf.MAX_CNAME:
                raise spf.PermError(f"Length of CNAME chain exceeds {spf.MAX_CNAME}")
            cnames[name] = cname
            if cname.lower().rstrip(".") not in cnames:
                result = self.dns(cname, qtype, cnames=cnames)
                if result:
                    self.cache[(name, qtype)] = result
        if not result and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return list(result)


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: str
    explanation: str
    lookups: int


def client_address(ctx: MessageContext) -> str | None:
    """The client's address as SPF checks it: parsed (a zone index dropped, an IPv4-mapped IPv6
    address as IPv4); None without one, or when the connection's is not an IP address."""
    addr = ctx.conn.ip
    return None if addr is None else str(addr)


def no_address_reason(ctx: MessageContext) -> str:
    """Why :func:`client_address` gave None (the layers' ``exempt`` fact)."""
    return "the client address is not an IP address" if ctx.conn.client_ip else "no client address"


def check_host(ip: str, sender: str, helo: str, *, resolver: Resolver | None = None,
               budget: DnsBudget | None = None, timeout: float = 20.0, receiver: str | None = None) -> SpfResult:
    """RFC 7208 check_host() for one identity; ``sender`` empty means the HELO identity."""
    res = resolver or get_resolver()
    q = _Query(i=ip, s=sender, h=helo, receiver=receiver, lookup=spf_lookup(res, budget),
               timeout=timeout, querytime=timeout)
    try:
        result, _code, expl = q.check()
    except spf.TempError as e:  # pyspf normally converts; defensive
        return SpfResult("temperror", str(e), q.lookups)
    if result not in RESULTS:  # pyspf's legacy names
        result = {"error": "temperror", "unknown": "permerror", "ambiguous": "permerror"}.get(result, "permerror")
    return SpfResult(result, str(expl or ""), int(q.lookups))


class SpfLayer(Layer[SpfSettings]):
    id = "spf"
    stage = Stage.MAIL
    fail_mode = FailMode.UNKNOWN
    Settings = SpfSettings
    budget_s = 20.0
    title = "SPF"
    description = "SPF (RFC 7208) for the envelope sender and the HELO name"

    def prefetch(self, ctx: MessageContext, settings: SpfSettings) -> None:
        budget = budget_for(ctx)
        res = get_resolver()
        domain = ctx.sender_domain or ctx.conn.helo
        if domain:
            res.prefetch(domain, "TXT", budget)
        if settings.check_helo and ctx.conn.helo and ctx.conn.helo != domain:
            res.prefetch(ctx.conn.helo, "TXT", budget)

    def check(self, ctx: MessageContext, settings: SpfSettings) -> LayerFindings:
        why = exemption(ctx, allowlist=settings.exempt_allowlisted, authenticated=settings.exempt_authenticated,
                        trusted=settings.exempt_trusted)
        if why:
            return LayerFindings({"exempt": why})
        ip = client_address(ctx)
        if ip is None:
            return LayerFindings({"exempt": no_address_reason(ctx)})
        self.prefetch(ctx, settings)  # both identities' records at once (no-op when already started)
        budget = self.dns_budget(ctx)
        timeout = min(settings.lookup_timeout_s, ctx.runner.remaining(settings.lookup_timeout_s)) \
            if ctx.runner is not None else settings.lookup_timeout_s
        receiver = ctx.policy.hostname
        helo = ctx.conn.helo
        symbols = []
        facts: dict[str, Any] = {}
        helo_res: SpfResult | None = None
        if settings.check_helo and helo:
            helo_res = check_host(ip, "", helo, budget=budget, timeout=timeout, receiver=receiver)
            facts["helo_result"] = helo_res.result
            facts["helo_domain"] = helo.lower()
            name = f"SPF_HELO_{helo_res.result.upper()}"
            symbols.append(self.symbol(name, score_of(settings.scores, DEFAULT_SCORES, name), helo))
        if ctx.mail_from.strip("<> "):
            identity, domain = "mailfrom", split_address(ctx.mail_from)[1]
            main = check_host(ip, ctx.mail_from.strip("<> "), helo, budget=budget, timeout=timeout, receiver=receiver)
        elif helo_res is not None:  # null sender: the HELO identity is the MAIL FROM identity
            identity, domain, main = "helo", helo.lower(), helo_res
        else:
            identity, domain = "helo", helo.lower()
            main = check_host(ip, "", helo, budget=budget, timeout=timeout, receiver=receiver)
        name = f"SPF_{main.result.upper()}"
        symbols.append(self.symbol(name, score_of(settings.scores, DEFAULT_SCORES, name), domain))
        facts.update({"result": main.result, "domain": domain, "identity": identity,
                      "explanation": main.explanation[:300], "lookups": main.lookups})
        return LayerFindings(facts, tuple(symbols))

    def policy_rules(self, settings: SpfSettings) -> list[PolicyRule]:
        rules = []
        for result, action in (("fail", settings.fail_action), ("softfail", settings.softfail_action),
                               ("permerror", settings.permerror_action), ("temperror", settings.temperror_action)):
            text = settings.reject_text.replace("{domain}", "the sender domain")
            rule = action_rule(f"spf_{result}", f"SPF_{result.upper()}", action, Reply("550", "5.7.23", text),
                               f"SPF {result}")
            if rule:
                rules.append(rule)
        rule = action_rule("spf_helo_fail", "SPF_HELO_FAIL", settings.helo_fail_action,
                           Reply("550", "5.7.23", "SPF check failed for the HELO name"), "SPF HELO fail")
        if rule:
            rules.append(rule)
        return rules


# -- Sender ID (RFC 4406 / RFC 4407), optional legacy ---------------------------------------------
SENDERID_SCORES: dict[str, float] = {
    "SENDERID_PASS": 0.0, "SENDERID_FAIL": 1.0, "SENDERID_SOFTFAIL": 0.5, "SENDERID_NEUTRAL": 0.0,
    "SENDERID_NONE": 0.0, "SENDERID_TEMPERROR": 0.0, "SENDERID_PERMERROR": 0.0,
}
_RESENT = ("resent-sender", "resent-from")
_TRACE = ("received", "return-path")


def purported_responsible_address(headers: list[tuple[str, str]]) -> tuple[str | None, str]:
    """RFC 4407 section 2: the PRA, or (None, why) when there is none or it is ambiguous."""
    from gateway_milter.mime.headers import addresses

    def single(value: str) -> str | None:
        addrs = [a for _, a in addresses([value]) if a]
        return addrs[0] if len(addrs) == 1 and "@" in addrs[0] else None

    lower = [(n.lower(), v) for n, v in headers]
    # 1-2: the first block of Resent-* headers (up to the next trace header)
    for i, (n, v) in enumerate(lower):
        if n in _RESENT and v.strip():
            block = []
            for n2, v2 in lower[i:]:
                if n2 in _TRACE:
                    break
                block.append((n2, v2))
            senders = [v2 for n2, v2 in block if n2 == "resent-sender" and v2.strip()]
            froms = [v2 for n2, v2 in block if n2 == "resent-from" and v2.strip()]
            chosen, name = (senders, "Resent-Sender") if senders else (froms, "Resent-From")
            if len(chosen) != 1:
                return None, f"{len(chosen)} {name} headers in the first Resent block"
            addr = single(chosen[0])
            return (addr, "") if addr else (None, f"{name} is not one mailbox")
    # 3: Sender, 4: From
    for field_name in ("sender", "from"):
        values = [v for n, v in lower if n == field_name and v.strip()]
        if len(values) > 1:
            return None, f"{len(values)} {field_name} headers"
        if values:
            addr = single(values[0])
            return (addr, "") if addr else (None, f"{field_name} is not one mailbox")
    return None, "no PRA header"


def sender_id_record(records: tuple[str, ...]) -> tuple[str | None, str]:
    """RFC 4406 section 3.4: an ``spf2.0/...pra...`` record, else ``v=spf1``; returned as a
    ``v=spf1`` record for evaluation, or (None, 'none'|'permerror')."""
    pra = [r for r in records if re.match(r"^spf2\.0/([a-z,]*,)?pra(,[a-z,]*)?( |$)", r, re.IGNORECASE)]
    if len(pra) > 1:
        return None, "permerror"
    if pra:
        parts = pra[0].split(None, 1)
        return ("v=spf1 " + parts[1]) if len(parts) > 1 else "v=spf1", ""
    v1 = [r for r in records if re.match(r"^v=spf1( |$)", r, re.IGNORECASE)]
    if len(v1) > 1:
        return None, "permerror"
    return (v1[0], "") if v1 else (None, "none")


@dataclass(frozen=True, slots=True)
class SenderIdSettings(BaseSettings):
    mode: str = "off"  # legacy: opt-in
    fail_action: str = "score"
    scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        check_action("fail_action", self.fail_action)


class SenderIdLayer(Layer[SenderIdSettings]):
    """Sender ID: SPF-style records checked against the purported responsible address."""

    id = "senderid"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = SenderIdSettings
    title = "Sender ID"
    description = "Sender ID (RFC 4406, PRA identity), legacy"

    def check(self, ctx: MessageContext, settings: SenderIdSettings) -> LayerFindings:
        why = exemption(ctx)
        if why:
            return LayerFindings({"exempt": why})
        ip = client_address(ctx)
        if ip is None:
            return LayerFindings({"exempt": no_address_reason(ctx)})
        pra, problem = purported_responsible_address(ctx.headers)
        if pra is None:
            result, domain, expl = "permerror", "", problem
        else:
            domain = pra.rpartition("@")[2].lower()
            budget = self.dns_budget(ctx)
            ans = get_resolver().query_txt(domain, budget)
            if ans.temporary:
                result, expl = "temperror", f"DNS {ans.status}"
            else:
                record, status = sender_id_record(ans.records if ans.ok else ())
                if record is None:
                    result, expl = status, "no Sender ID record" if status == "none" else "several records"
                else:
                    q = _Query(i=ip, s=pra, h=ctx.conn.helo or domain, receiver=ctx.policy.hostname,
                               lookup=spf_lookup(get_resolver(), budget), timeout=10.0, querytime=10.0)
                    try:
                        result, _code, expl = q.check(spf=record)
                    except spf.TempError as e:
                        result, expl = "temperror", str(e)
                    if result not in RESULTS:
                        result = "permerror"
        name = f"SENDERID_{result.upper()}"
        sym = self.symbol(name, score_of(settings.scores, SENDERID_SCORES, name), pra or "")
        return LayerFindings({"result": result, "pra": pra or "", "domain": domain, "explanation": str(expl)[:300]},
                             (sym,))

    def policy_rules(self, settings: SenderIdSettings) -> list[PolicyRule]:
        rule = action_rule("senderid_fail", "SENDERID_FAIL", settings.fail_action,
                           Reply("550", "5.7.1", "Sender ID check failed"), "Sender ID fail")
        return [rule] if rule else []
