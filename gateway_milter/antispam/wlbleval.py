"""SpamAssassin's WLBLEval plugin: address lists (``enlist_addrlist``, ``welcomelist_from``,
``blocklist_to``, ...), welcome lists with a relay (``welcomelist_from_rcvd``,
``def_welcomelist_from_rcvd``), URI host lists (``enlist_uri_host``) and
``check_mailfrom_matches_rcvd`` (the envelope sender's domain is the first untrusted relay's).

The lists are read from the rule files by sarules and made once per rule set (``Lists``, the
engine's extras); the functions below follow WLBLEval.pm, PerMsgStatus::all_to_addrs and
RegistryBoundaries::split_domain. Our own allow and block lists are the ``lists`` layer; these
exist so that the rule files' rules that consult them (FROM_BANK_NOAUTH, the URL shortener
metas, the ``__RP_MATCHES_RCVD`` exceptions of about twenty metas, ...) run as in SpamAssassin,
and so that a SpamAssassin ``local.cf`` with ``welcomelist_from`` lines keeps its meaning.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway_milter.antispam.saeval import _all_from_addrs, _eval
from gateway_milter.antispam.saview import body_lines
from gateway_milter.antispam.sauris import idn_to_ascii, is_fqdn_valid

if TYPE_CHECKING:
    from gateway_milter.antispam.relays import Relay
    from gateway_milter.antispam.sarules import RuleSet
    from gateway_milter.antispam.saview import SaMessage

US_STATES = frozenset((
    "ak", "al", "ar", "az", "ca", "co", "ct", "dc", "de", "fl", "ga", "gu", "hi", "ia", "id", "il", "in", "ks",
    "ky", "la", "ma", "md", "me", "mi", "mn", "mo", "ms", "mt", "nc", "nd", "ne", "nh", "nj", "nm", "nv", "ny",
    "oh", "ok", "or", "pa", "pr", "ri", "sc", "sd", "tn", "tx", "ut", "va", "vi", "vt", "wa", "wi", "wv", "wy"))
_FOR_CLAUSE = re.compile(r" for <?(\S+@(\S+?))>?;")
_TO_HEADERS = ("To", "Apparently-To", "Delivered-To", "Envelope-Recipients", "Apparently-Resent-To", "X-Envelope-To",
               "Envelope-To", "X-Delivered-To", "X-Original-To", "X-Rcpt-To", "X-Real-To", "Cc")


def glob_regex(addr: str) -> str:
    """Conf::Parser::add_to_addrlist: a lower-cased glob (``*`` any string, ``?`` one
    character, every other character but ``_`` and ASCII letters and digits literal)."""
    out: list[str] = []
    for c in addr.lower():
        if c in "\0\\(":
            c = "_"
        if c == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "_" or (c.isascii() and c.isalnum()):
            out.append(c)
        else:
            out.append(re.escape(c))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class AddrList:
    """One address list: its entries as written (an exact look-up first, as WLBLEval's
    ``_check_welcomelist``), then every entry's glob, as one expression."""
    exact: frozenset[str]
    rx: re.Pattern[str] | None

    @classmethod
    def of(cls, globs: Iterable[str]) -> AddrList:
        entries = sorted(set(globs))
        rx = re.compile("^(?:" + "|".join(glob_regex(g) for g in entries) + ")$") if entries else None
        return cls(frozenset(entries), rx)

    def match(self, addr: str) -> bool:
        a = addr.lower()
        return a in self.exact or (self.rx is not None and self.rx.search(a) is not None)


@dataclass(frozen=True, slots=True)
class Lists:
    """The rule set's WLBLEval lists, made once (the engine's extras ``wlbl``)."""
    addr: dict[str, AddrList] = field(default_factory=dict)
    rcvd: dict[str, tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]] = field(default_factory=dict)
    uri_hosts: dict[str, dict[str, bool]] = field(default_factory=dict)
    tld2: frozenset[str] = frozenset()
    tld3: frozenset[str] = frozenset()
    adsp_override: dict[str, str] = field(default_factory=dict)  # (the DKIM plugin's, authlists)

    @classmethod
    def of(cls, rs: RuleSet) -> Lists:
        return cls({n: AddrList.of(v) for n, v in rs.addrlists.items()},
                   {n: tuple((re.compile("^" + glob_regex(a) + "$"), tuple(doms)) for a, doms in v.items())
                    for n, v in rs.rcvdlists.items()},
                   {n: dict(v) for n, v in rs.uri_host_lists.items()},
                   frozenset(rs.tld2), frozenset(rs.tld3), dict(rs.adsp_override))


_EMPTY = Lists()


def _lists(extra: dict[str, Any]) -> Lists:
    got = extra.get("wlbl")
    return got if isinstance(got, Lists) else _EMPTY


def split_domain(domain: str, tld2: frozenset[str], tld3: frozenset[str]) -> tuple[str, str]:
    """RegistryBoundaries::split_domain: (host part, registered domain), by the rule files'
    ``util_rb_2tld`` / ``util_rb_3tld`` lists and the US state rules of RFC 1480."""
    d = idn_to_ascii(domain)
    d = re.sub(r"\.{2,}", ".", d).strip(".")
    if not d:
        return "", ""
    parts = d.split(".")
    host: list[str] = []
    while len(parts) > 1:
        if len(parts) == 2:
            if ".".join(parts) in tld2:
                break
        elif len(parts) == 3:
            if parts[2] == "us":
                if parts[1] in US_STATES:
                    break
            elif ".".join(parts) in tld3:
                break
        elif len(parts) == 4 and parts[3] == "us" and parts[2] in US_STATES \
                and ((parts[0] == "pvt" and parts[1] == "k12") or parts[0] in ("ci", "co")):
            break
        host.append(parts.pop(0))
    if host:
        parts.insert(0, host.pop())
    return ".".join(host), ".".join(parts)


def _relays_to_check(m: SaMessage) -> list[Relay]:
    """The first untrusted relay, or all the trusted ones when none is untrusted."""
    path = m.relays()
    if path.untrusted:
        return [path.untrusted[0]]
    return list(path.trusted)


# -- address lists ----------------------------------------------------------------------------------
def all_to_addrs(m: SaMessage) -> list[str]:
    """PerMsgStatus::all_to_addrs: the first Resent-To and Resent-Cc's addresses, else the
    recipients of the 3 newest Received headers' ``for`` clauses, then To, Apparently-To,
    Delivered-To, ... and Cc; without duplicates."""
    got: list[str] | None = m.cache.get("all_to_addrs")
    if got is not None:
        return got
    addrs: list[str] = []
    for name in ("resent-to", "resent-cc"):  # (get's :addr parses the raw values)
        first = m._values(m.raw_headers, name)[:1]
        addrs += [a for _, a in m.addresses(first) if a]
    if not addrs:
        for line in m._values(m.headers, "received")[:3]:
            fm = _FOR_CLAUSE.search(line)
            if fm and is_fqdn_valid(idn_to_ascii(fm.group(2))):
                addrs.append(fm.group(1))
        for name in _TO_HEADERS:
            addrs += [a for _, a in m.addresses(m._values(m.raw_headers, name.lower())) if a]
    got = m.cache["all_to_addrs"] = list(dict.fromkeys(addrs))
    return got


def _in_list(extra: dict[str, Any], name: str, addrs: Callable[[], Iterable[str]]) -> int:
    lst = _lists(extra).addr.get(name)
    if lst is None:
        return 0  # (SpamAssassin warns "could not find list"; the addresses are not looked at)
    return int(any(lst.match(a) for a in addrs()))


@_eval("check_from_in_list")
def check_from_in_list(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _in_list(extra, str(args[0]), lambda: _all_from_addrs(m)) if args else 0


@_eval("check_replyto_in_list")
def check_replyto_in_list(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _in_list(extra, str(args[0]), lambda: [a for a in [m.header("Reply-To:addr") or ""] if a]) if args else 0


@_eval("check_to_in_list")
def check_to_in_list(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _in_list(extra, str(args[0]), lambda: all_to_addrs(m)) if args else 0


def _named(list_name: str, to: bool) -> Any:
    def fn(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
        return _in_list(extra, list_name, (lambda: all_to_addrs(m)) if to else (lambda: _all_from_addrs(m)))
    return fn


for _fn, _list, _to in (("check_from_in_blocklist", "blocklist_from", False),
                        ("check_from_in_blacklist", "blocklist_from", False),
                        ("check_to_in_blocklist", "blocklist_to", True),
                        ("check_to_in_blacklist", "blocklist_to", True),
                        ("check_to_in_welcomelist", "welcomelist_to", True),
                        ("check_to_in_whitelist", "welcomelist_to", True),
                        ("check_to_in_more_spam", "more_spam_to", True),
                        ("check_to_in_all_spam", "all_spam_to", True)):
    _eval(_fn)(_named(_list, _to))


# -- VBounce: bounces of mail the site's own relays sent -------------------------------------------
BOUNCE_RELAYS = "welcomelist_bounce_relays"
_QUOTED_RECEIVED = re.compile(r"^[> ]*Received:", re.I)
_BODY_RELAY = re.compile(r" (\S+\.\S+) ", re.ASCII)  # (Perl's \s on octets: ASCII white space)
_HEADER_RELAY = re.compile(r"\s(\S+\.\S+)\s", re.ASCII)
_SPACE_START = re.compile(r"\s", re.ASCII)
_PRISTINE_LINE = re.compile(r"^(.*)$", re.M)


@_eval("have_any_bounce_relays")
def have_any_bounce_relays(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """VBounce: whether ``welcomelist_bounce_relays`` names any relay (Debian's bounce rules
    need it: with none, no message is called a bounce of the site's own mail)."""
    lst = _lists(extra).addr.get(BOUNCE_RELAYS)
    return int(lst is not None and bool(lst.exact))


def check_welcomelist_bounce_relays(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """VBounce: a quoted ``Received:`` line naming one of ``welcomelist_bounce_relays``, first
    in the rendered body's lines, then in the raw body (a message/* part: header fields
    continued over lines are read joined, as VBounce reads them)."""
    lst = _lists(extra).addr.get(BOUNCE_RELAYS)
    if lst is None or not lst.exact:
        return 0
    for line in body_lines(m):
        if _QUOTED_RECEIVED.match(line) and any(lst.match(r.group(1)) for r in _BODY_RELAY.finditer(line)):
            return 1
    full = m.full.replace("\r\n", "\n")
    end = full.find("\n\n")
    pristine = full[end + 2:] if end >= 0 else ""
    if not re.search("received:", pristine, re.I):
        return 0
    found = False
    hdr = ""
    for mt in _PRISTINE_LINE.finditer(pristine):
        line = mt.group(1)
        if not found:
            if not _QUOTED_RECEIVED.match(line):
                continue
            found = True
        hdr = hdr + line if _SPACE_START.match(line) else line
        if _QUOTED_RECEIVED.match(hdr) and any(lst.match(r.group(1)) for r in _HEADER_RELAY.finditer(hdr)):
            return 1
    return 0


_eval("check_welcomelist_bounce_relays")(check_welcomelist_bounce_relays)
_eval("check_whitelist_bounce_relays")(check_welcomelist_bounce_relays)


# -- welcome lists with a relay --------------------------------------------------------------------
def _relay_matches(domain: str, relay: Relay) -> bool:
    """One ``welcomelist_from_rcvd`` second parameter against one relay: ``[IP]``, ``[IP/len]``
    or a classful ``[1.2.3]`` against its address, else a name against the end of its rDNS."""
    lit = re.fullmatch(r"\[(.*)\](/\d{1,3})?", domain, re.S)
    if lit is None:
        rdns = relay.rdns.lower()
        return re.search(r"(?:^|\.)" + re.escape(domain) + r"$", rdns, re.I) is not None
    wl_ip = lit.group(1) + (lit.group(2) or "")
    rly_ip = relay.ip
    if not rly_ip:
        return False
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", wl_ip):
        return wl_ip == rly_ip
    if re.fullmatch(r"[\d.]+", wl_ip):
        return rly_ip.startswith(wl_ip.rstrip(".") + ".")
    try:
        return ipaddress.ip_address(rly_ip) in ipaddress.ip_network(wl_ip, strict=False)
    except ValueError:
        return False


def _welcomelist_rcvd(m: SaMessage, extra: dict[str, Any], name: str, addr: str) -> int:
    """WLBLEval::_check_welcomelist_rcvd: 1 when the address is listed with a relay that
    handed the message over, -1 when it is listed but no relay matches (a possible forgery,
    unless ``welcomelist_allows_relays`` lists it), else 0."""
    path = m.relays()
    if not path.untrusted and not path.trusted:
        return 0
    relays = _relays_to_check(m)
    a = addr.lower()
    forged = 0
    for rx, domains in _lists(extra).rcvd.get(name, ()):
        if rx.search(a) is None:
            continue
        for domain in domains:
            if any(_relay_matches(domain, r) for r in relays):
                return 1
            forged = -1
    if forged:
        allows = _lists(extra).addr.get("welcomelist_allows_relays")
        if allows is not None and allows.match(a):
            forged = 0
    return forged


def _from_in(m: SaMessage, extra: dict[str, Any], plain: str | None, rcvd: str) -> int:
    """WLBLEval's _check_from_in_welcomelist (``plain`` welcomelist_from, ``rcvd``
    welcomelist_from_rcvd) and _check_from_in_default_welcomelist (no plain list,
    def_welcomelist_from_rcvd): 1 listed, -1 listed but from another relay, 0; once a message."""
    key = f"from_in_{rcvd}"
    got: int | None = m.cache.get(key)
    if got is not None:
        return got
    lst = _lists(extra).addr.get(plain) if plain else None
    found = 0
    for a in _all_from_addrs(m):
        if lst is not None and lst.match(a):
            found = 1
            break
        wh = _welcomelist_rcvd(m, extra, rcvd, a)
        if wh == 1:
            found = 1
            break
        if wh == -1:
            found = -1
    m.cache[key] = found
    return found


def _from_in_welcomelist(m: SaMessage, extra: dict[str, Any]) -> int:
    return _from_in(m, extra, "welcomelist_from", "welcomelist_from_rcvd")


def _from_in_default_welcomelist(m: SaMessage, extra: dict[str, Any]) -> int:
    return _from_in(m, extra, None, "def_welcomelist_from_rcvd")


def check_from_in_welcomelist(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(_from_in_welcomelist(m, extra) > 0)


def check_forged_in_welcomelist(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(_from_in_welcomelist(m, extra) < 0 and _from_in_default_welcomelist(m, extra) == 0)


def check_from_in_default_welcomelist(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(_from_in_default_welcomelist(m, extra) > 0)


def check_forged_in_default_welcomelist(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(_from_in_default_welcomelist(m, extra) < 0 and _from_in_welcomelist(m, extra) == 0)


for _fn, _impl in (("from_in_welcomelist", check_from_in_welcomelist),
                   ("forged_in_welcomelist", check_forged_in_welcomelist),
                   ("from_in_default_welcomelist", check_from_in_default_welcomelist),
                   ("forged_in_default_welcomelist", check_forged_in_default_welcomelist)):
    _eval("check_" + _fn)(_impl)
    _eval("check_" + _fn.replace("welcomelist", "whitelist"))(_impl)


# -- the envelope sender and the relay -------------------------------------------------------------
@_eval("check_mailfrom_matches_rcvd")
def check_mailfrom_matches_rcvd(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """The envelope sender's registered domain is that of the first untrusted relay's rDNS
    (or of any trusted relay's when none is untrusted)."""
    sender = m.header("EnvelopeFrom:addr") or ""
    dm = re.search(r"@([^@]+\.[^@]+)\Z", sender)
    if dm is None:
        return 0
    lists = _lists(extra)
    _, sender_dom = split_domain(dm.group(1).lower(), lists.tld2, lists.tld3)
    for r in _relays_to_check(m):
        rdns = r.rdns.lower()
        if rdns and split_domain(rdns, lists.tld2, lists.tld3)[1] == sender_dom:
            return 1
    return 0


# -- URI host lists --------------------------------------------------------------------------------
def _uri_hosts_listed(m: SaMessage, extra: dict[str, Any]) -> dict[str, str]:
    """WLBLEval::_check_uri_host_listed: list name -> the first host of the message's URIs
    that it lists (each host tried whole, then without its leading labels; the most specific
    entry decides, ``!host`` entries say no)."""
    got: dict[str, str] | None = m.cache.get("uri_host_enlisted")
    if got is not None:
        return got
    lists = _lists(extra).uri_hosts
    enlisted: dict[str, str] = {}
    uris_of = extra.get("uris")
    settings = extra.get("uri_settings")
    if lists and uris_of is not None and settings is not None:
        seen: set[str] = set()
        for uri in uris_of():
            if uri[:7].lower() == "mailto:":
                continue
            host = settings.uri_host(uri)
            if not host or host in seen:
                continue
            seen.add(host)
            if host.startswith("[") and host.endswith("]"):
                keys = [host[1:-1]]
            elif re.fullmatch(r"\d+\.\d+\.\d+\.\d+", host):
                keys = [host]
            else:
                labels = host.split(".")
                keys = [".".join(labels[i:]) for i in range(len(labels))][-11:]
            for name in sorted(lists):
                entries = lists[name]
                for k in keys:
                    verdict = entries.get(k)
                    if verdict is not None:
                        if verdict and name not in enlisted:
                            enlisted[name] = host if k == host else f"{host} ({k})"
                        break
    m.cache["uri_host_enlisted"] = enlisted
    return enlisted


@_eval("check_uri_host_listed")
def check_uri_host_listed(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if not args or str(args[0]) not in _lists(extra).uri_hosts:
        return 0  # no such list: the URIs are not looked at
    return int(str(args[0]) in _uri_hosts_listed(m, extra))


def _uri_list(name: str) -> Any:
    def fn(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
        return int(name in _lists(extra).uri_hosts and name in _uri_hosts_listed(m, extra))
    return fn


for _fn, _list in (("check_uri_host_in_blocklist", "BLOCK"), ("check_uri_host_in_blacklist", "BLOCK"),
                   ("check_uri_host_in_welcomelist", "WELCOME"), ("check_uri_host_in_whitelist", "WELCOME")):
    _eval(_fn)(_uri_list(_list))
