"""From-header screening: look-alike domains and display-name impersonation (RFC 5322 From,
confusables after Unicode TR #39 "skeleton" folding, reduced to a built-in table).

Only mail that is not DMARC-aligned is screened (a From domain that passed DMARC is what it
says it is). Checks:

- ``FROM_LOOKALIKE``: the From domain is not local but imitates a local domain or a
  ``protected_domains`` entry: same skeleton after folding confusable characters
  (``paypa1.com``, ``exаmple.com`` with a Cyrillic "а", ``rn`` for ``m``) or an edit distance
  of at most ``max_distance`` on the registrable label;
- ``FROM_DISPLAY_NAME_SPOOF``: the display name contains an address or domain of a local or
  protected domain while the actual From domain is external;
- ``FROM_VIP_IMPERSONATION``: the display name is (a look-alike of) a configured VIP name
  and the From address is not that VIP's address;
- ``FROM_LOCAL_DOMAIN_UNALIGNED``: the From domain is one of our own but the message comes
  from outside without passing DMARC.

Facts: ``from_domain``, ``display_name``, ``imitates`` (the domain or VIP imitated), ``aligned``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway_milter.auth.exemptions import action_rule, check_action, exemption, score_of
from gateway_milter.auth.psl import org_domain, public_suffix
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.mime.headers import addresses, decode_text
from gateway_milter.verdict import FailMode, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

DEFAULT_SCORES: dict[str, float] = {"FROM_LOOKALIKE": 4.0, "FROM_DISPLAY_NAME_SPOOF": 3.0,
                                    "FROM_VIP_IMPERSONATION": 4.0, "FROM_LOCAL_DOMAIN_UNALIGNED": 2.0}
SYMBOLS = tuple(DEFAULT_SCORES)

# Characters that render like ASCII letters/digits (subset of Unicode confusables.txt: Cyrillic,
# Greek, Latin look-alikes, full-width forms are handled by NFKC) and ASCII digit/letter swaps.
_CONFUSABLE = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ь": "b", "к": "k", "м": "m", "т": "t", "н": "h",
    "в": "b", "г": "r", "п": "n", "ү": "y", "ө": "o",
    "α": "a", "ο": "o", "ε": "e", "ν": "v", "ρ": "p", "τ": "t", "υ": "u", "ι": "i", "κ": "k", "χ": "x",
    "ı": "i", "ł": "l", "ɡ": "g", "ɑ": "a", "ƅ": "b", "ɩ": "i", "ℓ": "l",
    "0": "o", "1": "l", "3": "e", "5": "s", "7": "t", "|": "l", "!": "i", "$": "s", "@": "a", "i": "l",
})
_MULTI = (("rn", "m"), ("vv", "w"), ("cl", "d"), ("nn", "m"))


def skeleton(text: str) -> str:
    """A folded form in which look-alike strings become equal."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn")
    t = t.translate(_CONFUSABLE)
    for a, b in _MULTI:
        t = t.replace(a, b)
    return re.sub(r"[\s._-]+", "", t)


def distance(a: str, b: str, limit: int = 3) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, capped at ``limit + 1``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _label(domain: str) -> str:
    """The registrable label: ``mail.example.co.uk`` -> ``example``."""
    org = org_domain(domain) or domain
    suffix = public_suffix(org) or ""
    return org[: -len(suffix) - 1] if suffix and org.endswith("." + suffix) else org.split(".")[0]


def _to_unicode(domain: str) -> str:
    try:
        return ".".join(p.encode().decode("idna") if p.startswith("xn--") else p for p in domain.split("."))
    except UnicodeError:
        return domain


def imitates(domain: str, protected: list[str], max_distance: int = 1) -> str | None:
    """The protected domain ``domain`` looks like (but is not), or None."""
    d = domain.lower().rstrip(".")
    d_org = org_domain(d) or d
    d_uni = _to_unicode(d_org)
    d_label = _label(d_uni)
    for p in protected:
        p = p.lower().rstrip(".")
        p_org = org_domain(p) or p
        if d_org == p_org:
            return None  # the real thing (or a subdomain of it)
    for p in protected:
        p_org = org_domain(p.lower()) or p.lower()
        p_label = _label(p_org)
        if skeleton(d_uni) == skeleton(p_org) or skeleton(d_label) == skeleton(p_label):
            return p_org
        if len(p_label) >= 5 and distance(d_label, p_label, max_distance) <= max_distance:
            return p_org
        # the protected label embedded in a longer label: paypal-secure.com, examplecorp-login.net
        if len(p_label) >= 5 and p_label in re.split(r"[-.]", d_label):
            return p_org
    return None


@dataclass(frozen=True, slots=True)
class FromScreenSettings(BaseSettings):
    protected_domains: tuple[str, ...] = ()  # besides the local domains
    vip_names: tuple[str, ...] = ()  # "Jane Doe=jane@example.com": the name and the real address
    max_distance: int = 1
    check_local_domains: bool = True
    lookalike_action: str = "score"
    display_name_action: str = "score"
    vip_action: str = "score"
    local_unaligned_action: str = "score"
    scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        for n in ("lookalike_action", "display_name_action", "vip_action", "local_unaligned_action"):
            check_action(n, getattr(self, n))
        if not 0 <= self.max_distance <= 3:
            raise SettingsError("max_distance", "must be 0..3")
        for i, v in enumerate(self.vip_names):
            name, eq, addr = v.partition("=")
            if not name.strip() or (eq and "@" not in addr):
                raise SettingsError(f"vip_names[{i}]", "must be 'Name' or 'Name=address@domain'")

    def vips(self) -> list[tuple[str, set[str]]]:
        out: dict[str, set[str]] = {}
        for v in self.vip_names:
            name, _, addr = v.partition("=")
            out.setdefault(name.strip(), set())
            if addr.strip():
                out[name.strip()].add(addr.strip().lower())
        return list(out.items())


class FromScreenLayer(Layer[FromScreenSettings]):
    id = "fromscreen"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = FromScreenSettings
    title = "From-header screening"
    description = "From header look-alike domains, display-name and VIP impersonation"

    def check(self, ctx: MessageContext, settings: FromScreenSettings) -> LayerFindings:
        def sym(name: str, detail: str = "") -> Any:
            return self.symbol(name, score_of(settings.scores, DEFAULT_SCORES, name), detail)

        why = exemption(ctx)
        if why:
            return LayerFindings({"exempt": why})
        values = ctx.header_values("From")
        if not values:
            return LayerFindings({"from_domain": ""})
        pairs = addresses([decode_text(v) for v in values])
        display, addr = pairs[0] if pairs else ("", "")
        addr = addr.lower()
        domain = addr.rpartition("@")[2].rstrip(".")
        dmarc = ctx.layer("dmarc") if ctx.runner is not None else None
        is_aligned = bool(dmarc and dmarc.fact("result") == "pass")
        facts: dict[str, Any] = {"from_domain": domain, "display_name": display[:200], "aligned": is_aligned,
                                 "imitates": None}
        if is_aligned:
            return LayerFindings(facts)
        protected = list(settings.protected_domains)
        if settings.check_local_domains:
            protected += list(ctx.policy.domains)
        cache = ctx.policy.compiled.setdefault("fromscreen", {})
        if len(cache) > 10000:  # per-snapshot memo of look-alike answers; keep it bounded
            cache.clear()
        symbols = []
        if domain and ctx.policy.is_local_domain(domain):
            symbols.append(sym("FROM_LOCAL_DOMAIN_UNALIGNED", domain))
        elif domain:
            key = ("lookalike", domain, tuple(protected), settings.max_distance)
            if key not in cache:
                cache[key] = imitates(domain, protected, settings.max_distance)
            hit = cache[key]
            if hit:
                facts["imitates"] = hit
                symbols.append(sym("FROM_LOOKALIKE", f"{domain} ~ {hit}"))
        dn = display.strip()
        if dn and domain and not ctx.policy.is_local_domain(domain):
            dn_low = dn.lower()
            for p in protected:
                p_org = org_domain(p) or p
                shown = re.search(r"(^|[@\s<(\"'.])" + re.escape(p_org.lower()) + r"($|[\s>)\"'])", dn_low)
                if shown and (org_domain(domain) or domain) != p_org:
                    facts["imitates"] = facts["imitates"] or p_org
                    symbols.append(sym("FROM_DISPLAY_NAME_SPOOF", f"{dn[:60]} <{addr}>"))
                    break
        if dn:
            sk = skeleton(dn)
            for name, addrs in settings.vips():
                if sk == skeleton(name) or distance(sk, skeleton(name), 1) <= 1 and len(name) >= 6:
                    if addr not in addrs:
                        facts["imitates"] = name
                        symbols.append(sym("FROM_VIP_IMPERSONATION", f"{dn[:60]} <{addr}>"))
                    break
        return LayerFindings(facts, tuple(symbols))

    def policy_rules(self, settings: FromScreenSettings) -> list[PolicyRule]:
        rules = []
        for symbol, action, text in (
            ("FROM_LOOKALIKE", settings.lookalike_action, "Sender domain imitates a protected domain"),
            ("FROM_DISPLAY_NAME_SPOOF", settings.display_name_action, "Sender display name is misleading"),
            ("FROM_VIP_IMPERSONATION", settings.vip_action, "Sender impersonates a protected person"),
            ("FROM_LOCAL_DOMAIN_UNALIGNED", settings.local_unaligned_action, "Unauthenticated use of a local domain"),
        ):
            rule = action_rule(symbol.lower(), symbol, action, Reply("550", "5.7.1", text), text)
            if rule:
                rules.append(rule)
        return rules
