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
import operator
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from gateway_milter.antispam.dnslists import Zone, parse_zones, refusal, reversed_ip
from gateway_milter.antispam.saview import SaMessage, message_view
from gateway_milter.antispam.sauris import UriSettings, url_decode, with_scheme
from gateway_milter.antispam.urls import deobfuscate, find_urls, normalize_link, org_domain, to_ascii, url_host
from gateway_milter.auth import psl
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


# URIDNSBL's ranks (SpamAssassin 4.0, Plugin/URIDNSBL.pm): anchors with text, forms, images,
# the other HTML links, URIs parsed from the text (the Subject first), anchors without text.
# When a message has more targets than ``max_lookups``, the best ranked are looked up.
RANK_A, RANK_FORM, RANK_IMG, RANK_OTHER, RANK_TEXT, RANK_A_EMPTY = range(6)
_RANK_OF = {"a": RANK_A, "form": RANK_FORM, "img": RANK_IMG, "other": RANK_OTHER, "a_empty": RANK_A_EMPTY}
MAX_CANDIDATES = 5000  # links weighed per message (hostile input bound)
# DNS queries of the message's allowance (resolver.budget_for: 200) URIBL leaves to the layers
# that look up after it (DKIM and ARC keys, VBR, DMARC): SPF alone may make 10 lookups and 2 void
DNS_RESERVE = 50
_ROOM, _LEFT_OUT = "_uribl_room", "_uribl_left_out"
# names reserved for testing (RFC 6761): no list operator learns anything from them, and test
# lists (rbldnsd, the docs' examples) use them; "invalid" and "localhost" are not among them
_TEST_TLDS = frozenset({"test", "example"})
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:")
# an email address in text (its domain is not a link: SpamAssassin's uridnsbl_skip_mailto), and
# mailto: URIs; the text link pattern would take "www.x.test" in "bob@www.x.test". The address
# ends with its domain's last label: what follows it ("sales@shop.test,http://evil.test/") stays
_MAIL_IN_TEXT = re.compile(r"(?i)\bmailto:[^\s<>\"',|]*|(?<![:/\w.+%@-])[\w.+%!#$&*=?^{}~-]+@[\w-]+(?:\.[\w-]+)+")


def lookup_targets(links: Iterable[str | tuple[int, str]], skip: Container[str], limit: int,
                   domains: bool = True, ips: bool = True) -> list[str]:
    """Organisational domains and IPs of the links, deduplicated, bounded by ``limit``, best
    ranked first. ``links``: URLs, or (rank, URL) pairs (:func:`message_links`); a target
    takes the best rank of its links, and within a rank the order of their first link (plain
    URLs all have one rank: their order). Junk put before the real link (20 links without
    text, 1-pixel images) no longer pushes it out: the anchors with text come first.
    Only the kinds some zone looks up count (``domains``, ``ips``): with domain-only zones,
    links to numeric hosts would otherwise use up ``limit`` and push the real domains out.
    Names whose top-level domain is not a real one (``localhost``, ``intranet``, ``a.b``) and
    bare public suffixes (``com``, ``co.uk``) are not looked up: they would tell the list's
    operator internal names. A link is skipped when ``skip`` has its organisational domain,
    its host or a domain between the two (``www.partner.test`` or a hosted
    ``mail.example.com`` skips links to itself and its subdomains; their organisational
    domain was looked up)."""
    best: dict[str, tuple[int, int]] = {}
    for seq, item in enumerate(links):
        if seq >= MAX_CANDIDATES:
            break
        rank, u = (RANK_OTHER, item) if isinstance(item, str) else item
        host = url_host(u)
        if not host:
            continue
        target = org_domain(host)
        prev = best.get(target)
        if prev is not None and prev[0] <= rank:
            continue
        ip = _ip_of(target)
        if _skipped(host, target, skip, ip is not None):
            continue
        if ip is not None:
            if _internal(ip) or not ips:
                continue
        elif not domains or not valid_name(target):
            continue
        best[target] = (rank, seq)
    ordered = sorted(best.items(), key=operator.itemgetter(1))
    return [t for t, _ in ordered[:limit]]


def valid_name(target: str) -> bool:
    """A registrable name under a real top-level domain (the Public Suffix List's, or a name
    RFC 6761 reserves for tests): not ``localhost``, ``intranet``, ``evil29``, ``a.b``, and
    not a public suffix itself (``com``, ``co.uk``)."""
    last = target.rpartition(".")[2]
    if not last or (last not in _TEST_TLDS and not psl.is_tld(last)):
        return False
    return psl.org_domain(target) == target


def message_links(view: SaMessage, redirectors: tuple[re.Pattern[str], ...] = ()) -> list[tuple[int, str]]:
    """The links URIBL weighs, with their ranks (RANK_*): the HTML parts' links (SpamAssassin's
    HTML URIs: hrefs, form actions, image and other sources; a schemeless href is read as
    http://, as SpamAssassin reads it), then the links in the rendered text: the Subject and
    the body as the rules read them (not the HTML source: no DOCTYPE, xmlns, style, script or
    comment URLs), by their scheme or ``www.``, de-obfuscated, and host names without a scheme
    under a real top-level domain (``evil.test/buy``), as SpamAssassin's text parser finds them;
    never the domain of an email address. Each link's redirector target comes with it, at its
    rank: what a ``redirector_pattern`` of the rule set (``redirectors``) captures, else a URL
    inside it after one percent-decoding. Kept in the view's cache (prefetch and check both
    ask)."""
    cached = view.cache.get("uribl_links")
    if cached is not None:
        return cast("list[tuple[int, str]]", cached)
    out: list[tuple[int, str]] = []
    for facts in view.html_all:
        kinds = facts.uri_kinds
        for i, raw in enumerate(facts.uris):
            if len(out) >= MAX_CANDIDATES:
                break
            u = _web_link(raw)
            if u is not None:
                rank = _RANK_OF.get(kinds[i], RANK_OTHER) if i < len(kinds) else RANK_OTHER
                out.extend((rank, x) for x in _with_inner(u, redirectors))
    text = _MAIL_IN_TEXT.sub(" ", view.body) if "@" in view.body else view.body
    for u in find_urls(text):
        out.extend((RANK_TEXT, x) for x in _with_inner(u, redirectors))
    # (SpamAssassin's parser tells addresses from links itself: it reads the text as it is, so
    # "www.paypal.com@evil.test/login" is a link to evil.test, not an address)
    for u in _text_parser().text_uris([deobfuscate(view.body)]):
        if not u.lower().startswith("mailto:"):
            out.append((RANK_TEXT, u))
    view.cache["uribl_links"] = out
    return out


def _web_link(raw: str) -> str | None:
    """An HTML link as a browser follows it; a schemeless one (``evil.test/buy``) read as
    ``http://`` (SpamAssassin's canonicalisation), not a relative path, fragment or address."""
    u = normalize_link(raw)
    if u is not None:
        return u
    raw = raw.strip()
    if not raw or _SCHEME.match(raw) or raw[0] in "/#?.&" or "@" in raw.split("/", 1)[0]:
        return None
    return "http://" + raw


def _with_inner(url: str, redirectors: tuple[re.Pattern[str], ...] = ()) -> list[str]:
    """The URL and the URLs a redirector in it leads to: the targets SpamAssassin's
    canonicalisation walks (sauris ``UriSettings.canonicalize``: the URL percent-decoded once,
    what the first matching ``redirector_pattern`` captures, else any http link inside it, bug
    3308), of its variants those written inside the URL (not its other forms: a port dropped,
    an IP rewritten, ``www.<name>.com`` guessed for a bare name). A target without a scheme
    (``?q=evil.example/buy``) is read as the canonicalisation reads it (``with_scheme``)."""
    decoded = url_decode(url) if "%" in url else url
    parser = _parser_for(psl.top_level_domains(), redirectors)
    return [url] + [with_scheme(u) for u in parser.canonicalize(url)[1:] if u in decoded and u != decoded]


def rule_set_redirectors(ctx: MessageContext) -> tuple[re.Pattern[str], ...]:
    """The ``redirector_pattern`` lines of the rules layer's rule set for this message (Debian's
    name Google's, AOL's, Facebook's and other redirectors), which SpamAssassin's URIDNSBL
    walks as its ``uri`` rules do; none where the rules layer is off or its rule set not built
    yet in this process (a message never waits for that build: the worker builds it at start)."""
    from gateway_milter import layers

    if "rules" not in layers.available():
        return ()
    from gateway_milter.antispam.engine import built_engine
    from gateway_milter.layers.rules import rule_set_of

    settings = ctx.policy.settings_for("rules", ctx.policy_domain)
    if not settings.enabled:
        return ()
    engine = built_engine(*rule_set_of(settings))
    return engine.uri_settings.redirectors if engine is not None else ()


@functools.lru_cache(maxsize=4)
def _parser_for(tlds: frozenset[str], redirectors: tuple[re.Pattern[str], ...] = ()) -> UriSettings:
    return UriSettings(tlds | _TEST_TLDS, redirectors)


def _text_parser() -> UriSettings:
    """SpamAssassin's text URI parser knowing the Public Suffix List's top-level domains."""
    return _parser_for(psl.top_level_domains())


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
    """The targets of a message and its lookups (target, zone, query name), in order: at most
    as many as the message's DNS query allowance has left, less :data:`DNS_RESERVE` (the links
    are the sender's to choose: 50 of them to 5 zones took every query the message had left, and
    the DKIM, ARC and VBR lookups after them came back as temporary errors). The room is read
    once a message, so prefetch and check make the same lookups."""
    skip = _Skip(skip_names(tuple(settings.skip_domains)), ctx.policy.domains)
    targets = lookup_targets(message_links(message_view(ctx), rule_set_redirectors(ctx)), skip, settings.max_lookups,
                             domains=any(z.kind != "ip" for z in zones), ips=any(z.kind != "domain" for z in zones))
    lookups = [(t, z, q) for t in targets for z in zones if (q := _query_name(t, z)) is not None]
    room = ctx.facts.get(_ROOM)
    if not isinstance(room, int):
        from gateway_milter.net.resolver import budget_for

        counter = budget_for(ctx).counter
        room = ctx.facts[_ROOM] = max(0, counter.limit - counter.count - DNS_RESERVE)
    if len(lookups) > room:
        ctx.facts[_LEFT_OUT] = len(lookups) - room
        lookups = lookups[:room]  # (the best ranked links' first)
    return targets, lookups


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
        from gateway_milter.net.resolver import get_resolver

        targets, lookups = _lookups(ctx, settings, zones)
        # (the layer's own time: with the lists' servers not answering, 100 lookups on 8 workers
        # took 20 s, where the layer is given 8)
        res, budget = get_resolver(), self.dns_budget(ctx)
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
            if (code := refusal([str(a) for a in ans.records], z)) is not None:
                unknown.append(f"{q} (the list refused the query: {code})")
                continue
            codes = [str(a) for a in ans.records if z.accepts(str(a))]
            if codes:
                # (two entries for one zone, its bits with their own weights: the codes of both)
                have = listed.setdefault(z.zone, {}).setdefault(t, [])
                have += [c for c in codes if c not in have]
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
        left_out = int(ctx.facts.get(_LEFT_OUT, 0))
        if left_out:
            ctx.add_trace(self.id, "warning", f"{left_out} lookup(s) of the least ranked links not made: the "
                          f"message's DNS query allowance keeps {DNS_RESERVE} for the other layers")
        facts: dict[str, object] = {"targets": targets, "listed": listed, "unknown": unknown}
        if left_out:
            facts["not_looked_up"] = left_out
        return LayerFindings(facts, tuple(symbols))

    def policy_rules(self, settings: UriblSettings) -> list[PolicyRule]:
        rules = []
        for z in settings.parsed:
            reply = Reply(settings.reject_code, settings.reject_enhanced, settings.reject_text.replace("{zone}", z.zone))
            rule = action_rule(f"uribl_{z.symbol.lower()}", z.symbol, z.action, reply, f"links listed by {z.zone}",
                               QuarantineQueue.USER)
            if rule is not None:
                rules.append(rule)
        return rules
