"""The trust path: the message's Received headers (RFC 5321 section 4.4) parsed into relay
records and split into trusted/untrusted and internal/external relays, as SpamAssassin 4 does
(Mail::SpamAssassin::Message::Metadata::Received). Rules read the result through the
pseudo-headers ``X-Spam-Relays-Trusted``, ``-Untrusted``, ``-Internal`` and ``-External``:
one ``[ ip=... rdns=... helo=... by=... ident=... envfrom=... intl=0|1 id=... auth=... msa=0|1 ]``
record per relay, newest first, space-separated.

Trust: with no networks configured, a relay is trusted while every relay up to it (newest
first) came from a private address or authenticated, and internal exactly when trusted
(SpamAssassin's inference). With networks configured, a relay stays trusted while its address
is in the trusted networks (loopback always is) or it authenticated; internal while also in
the internal networks; an MSA network makes every older relay keep its status.

Only the ``from`` part of each header is used: the MTA formats SpamAssassin recognises are
recognised here, in the same order (the first that matches decides), and a header none of
them matches is counted as unparseable. Bounds for hostile input: the first 200 Received
headers, 4,000 characters of each.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gateway_milter.antispam import possessive

MAX_RECEIVED = 200
MAX_LINE = 4000
# SpamAssassin 4's 10_default_prefs.cf: a single-address header of these becomes an extra,
# oldest relay (``from X-Originating-IP: a.b.c.d``) with no ``by``.
ORIGINATING_IP_HEADERS = ("X-Yahoo-Post-IP", "X-Originating-IP", "X-Apparently-From", "X-SenderIP", "X-AOL-IP",
                          "X-MS-Exchange-CrossTenant-OriginalAttributedTenantConnectingIp")

# -- addresses ------------------------------------------------------------------------------------
_OCTET = r"(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)"
_V4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_H = r"[a-f0-9]{1,4}"
# IPv6 as SpamAssassin's IP_ADDRESS recognises it: full, each way of eliding a run of zero
# groups, and IPv4-mapped forms; never inside a longer run of hex digits and colons.
_V6_MAPPED = (rf"(?:(?:{_H}:){{6}}|::(?:{_H}:){{0,5}}|(?:{_H}:){{1,5}}:|{_H}::(?:{_H}:){{1,4}}"
              rf"|(?:{_H}:){{2}}:(?:{_H}:){{1,3}}|(?:{_H}:){{3}}:(?:{_H}:){{1,2}}|(?:{_H}:){{4}}:{_H}:){_V4}")
_V6_PURE = (rf"(?:{_H}:){{7}}{_H}|:(?::{_H}){{1,7}}|(?:{_H}:){{1,7}}:|{_H}:(?::{_H}){{1,6}}"
            rf"|(?:{_H}:){{2}}(?::{_H}){{1,5}}|(?:{_H}:){{3}}(?::{_H}){{1,4}}|(?:{_H}:){{4}}(?::{_H}){{1,3}}"
            rf"|(?:{_H}:){{5}}(?::{_H}){{1,2}}|(?:{_H}:){{6}}:{_H}|::")
IP = (rf"(?i:\b(?<!:){_V4}\b|(?:IPv6:|(?<![a-f0-9:]))(?:{_V6_MAPPED}|{_V6_PURE})(?![a-f0-9:]))")
_IP_RE = possessive.compile(IP, re.ASCII)
# SpamAssassin's IP_PRIVATE: RFC 1918, loopback, link-local, CGN, for IPv4 and IPv4-mapped
# addresses; IPv6 link-local and ::1 (not unique-local fc00::/7).
_PRIVATE_V4 = possessive.compile(r"(?:10|127|169\.254|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168"
                                 r"|100\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7]))\.", re.ASCII)
_LOCALHOST = (r"(?i:localhost(?:\.localdomain)?|\b(?<!:)127\.0\.0\.1\b"
              r"|(?:IPv6:|(?<![a-f0-9:]))(?:(?:0{1,4}:){5}ffff:|::(?:0{1,4}:){0,4}ffff:)127\.0\.0\.1"
              r"|(?:IPv6:|(?<![a-f0-9:]))(?:(?:0{1,4}:){7}0{0,3}1|::0{0,3}1)(?![a-f0-9:]))")


def is_private_ip(ip: str) -> bool:
    if _PRIVATE_V4.match(ip):
        return True
    if ":" not in ip:
        return False
    try:
        a = ipaddress.IPv6Address(ip.removeprefix("IPv6:").removeprefix("ipv6:"))
    except ValueError:
        return False
    if a.ipv4_mapped is not None:
        return bool(_PRIVATE_V4.match(str(a.ipv4_mapped)))
    return a.is_loopback or a in _LINK_LOCAL


_LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NetSet:
    """A list of networks with exclusions (``!10.0.1.5``): the most specific entry that contains
    an address decides, as SpamAssassin's NetSet does with Net::Patricia. Loopback (127/8,
    ::1) is always in a trusted or internal set."""

    def __init__(self, entries: Iterable[str], loopback: bool = True) -> None:
        self.entries: list[tuple[Network, bool]] = []
        for e in entries:
            e = e.strip()
            if not e:
                continue
            neg = e.startswith("!")
            self.entries.append((parse_network(e.lstrip("!")), not neg))
        if loopback:
            self.entries += [(ipaddress.ip_network("127.0.0.0/8"), True), (ipaddress.ip_network("::1/128"), True)]
        self.entries.sort(key=lambda x: -x[0].prefixlen)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def contains(self, ip: str) -> bool:
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
            a = a.ipv4_mapped
        for net, ok in self.entries:
            if a.version == net.version and a in net:
                return ok
        return False


def parse_network(text: str) -> Network:
    """``10.0.1/24``, ``192.168.`` (implied /16), ``2001:db8::/32``, ``[::1]``, a single address.
    Raises ValueError."""
    t = text.strip().strip("[]")
    if "/" not in t and ":" not in t and t.endswith("."):
        parts = t.rstrip(".").split(".")
        t = ".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}"
    elif "/" in t and ":" not in t:
        addr, _, plen = t.partition("/")
        parts = addr.rstrip(".").split(".")
        t = ".".join(parts + ["0"] * (4 - len(parts))) + "/" + plen
    return ipaddress.ip_network(t, strict=False)


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Where the trust boundary lies. No networks: SpamAssassin's inference."""

    trusted: tuple[str, ...] = ()
    internal: tuple[str, ...] = ()
    msa: tuple[str, ...] = ()
    originating: bool = False  # the SMTP client authenticated (SpamAssassin's suppl_attrib "originating")

    def netsets(self) -> tuple[NetSet | None, NetSet | None, NetSet]:
        """(trusted, internal, msa); trusted and internal None for the inference. Either
        list stands for the other when only one is configured (as in SpamAssassin)."""
        return _netsets(self.trusted, self.internal, self.msa)


@functools.lru_cache(maxsize=64)
def _netsets(trusted: tuple[str, ...], internal: tuple[str, ...],
             msa: tuple[str, ...]) -> tuple[NetSet | None, NetSet | None, NetSet]:
    if not trusted and not internal:
        return None, None, NetSet(msa, loopback=False)
    return NetSet(trusted or internal), NetSet(internal or trusted), NetSet(msa, loopback=False)


# -- one Received header ------------------------------------------------------------------------
@dataclass(slots=True)
class Relay:
    ip: str = ""
    rdns: str = ""
    helo: str = ""
    by: str = ""
    ident: str = ""
    envfrom: str | None = None
    id: str = ""
    auth: str = ""
    internal: bool = False
    msa: bool = False
    ip_private: bool = False
    no_reverse_dns: bool = False  # the MTA looks rDNS up and found none
    rdns_not_in_headers: bool = False

    def as_string(self) -> str:
        return (f"[ ip={self.ip} rdns={self.rdns} helo={self.helo} by={self.by} ident={self.ident} "
                f"envfrom={self.envfrom or ''} intl={int(self.internal)} id={self.id} auth={self.auth} "
                f"msa={int(self.msa)} ]")


class _Skip(Exception):
    """The header describes no network handover (local delivery, fetchmail, a scanner)."""


class _Fetcher(_Skip):
    """A POP3/IMAP fetch: relays seen so far are the fetching host's, start again."""


class _QmailScanner(_Skip):
    """qmail-scanner's own line: its envelope sender belongs to the next (older) relay."""

    def __init__(self, envfrom: str | None) -> None:
        super().__init__()
        self.envfrom = envfrom


class _Fields:
    __slots__ = ("ip", "rdns", "helo", "by", "ident", "envfrom", "id", "auth", "dns")

    def __init__(self) -> None:
        self.ip = self.rdns = self.helo = self.by = self.ident = self.id = self.auth = ""
        self.envfrom: str | None = None
        self.dns = False  # the MTA is known to look the client's rDNS up


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return possessive.compile(pattern.replace("{IP}", IP).replace("{LOCALHOST}", _LOCALHOST), re.ASCII | flags)


# A format: (pattern, fields its groups fill, the MTA looks rDNS up); the first that matches the
# header (after "from ") decides. Group names: the field, ``helo_rdns`` sets both.
_Format = tuple[re.Pattern[str], bool]


def _f(pattern: str, dns: bool = False, flags: int = 0) -> _Format:
    return _rx(pattern, flags), dns


_DATE = _rx(r"[\s;]+(?:(?:Mon|T(?:ue|hu)|Wed|Fri|S(?:at|un)), )?\d+ (?:J(?:an|u[nl])|Feb|Ma[ry]|A(?:pr|ug)|Sep|Oct|Nov|Dec)"
            r" \d+ \d+:\d+(?::\d+)? \S+$")
_ID = _rx(r" id <?([^\s<>;]{3,})")
_HELO_EQ = _rx(r"\bhelo=([-A-Za-z0-9.^+_&:=?!@%*$\\/]+)(?:[^-A-Za-z0-9.^+_&:=?!@%*$\\/]|$)")
_HELO_CMD = _rx(r"\b(?:HELO|EHLO) ([-A-Za-z0-9.^+_&:=?!@%*$\\/]+)(?:[^-A-Za-z0-9.^+_&:=?!@%*$\\/]|$)")
_BY = _rx(r" by (\S+)(?:[^-A-Za-z0-9;.]|$)")
_SKIP_FIRST = (_rx(r"\bwith local for\b"),)
_NO_IP_BY = _rx(r"^from (\S+) by [^\s;]+ ?;", re.I)

# Authentication markers, in SpamAssassin's order: (guard, pattern, how the auth value is made);
# a guard is a literal every match of the pattern holds, or a condition of SpamAssassin's own
_AUTH: list[tuple[re.Pattern[str] | None, re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (_rx(r" by "), _rx(r" with ((?:ES|L|UTF8S|UTF8L)MTPS?A|ASMTP|HTTP[SU]?)(?: |;|$)", re.I), lambda m: m.group(1)),
    (_rx(r" by mx\.google\.com with ESMTPS id [a-z0-9]{1,4}sm[0-9]{2,9}[a-z]{3}\.[0-9]{1,3}\.[0-9]{4}\."
         r"(?:[0-6][0-9]\.){4}[0-6][0-9]"), _rx(r"\(version=([^ ]+) cipher=([^)]+)\)"),
     lambda m: f"GMail - transport={m.group(1)} cipher={m.group(2)}"),
    (_rx(r" \(AUTH: "), _rx(r"^from .*?(?:\]\)|\)\]) \(AUTH: (LOGIN|PLAIN|DIGEST-MD5|CRAM-MD5) \S+(?:, .*?)?\) by "),
     lambda m: m.group(1)),
    # Received.pm's "^from .*?(?:...) .*?\(.*?authenticated.*?\).*? by": each part needs only to
    # come after the one before, so the first place each can be is as good as any, and the
    # atomic groups keep them there: the same headers match, but ``re`` no longer tries every
    # combination of the five lazy gaps when no " by" follows (a header of "(authenticated)
    # [ip]) " repeated: over 60 s; tests/unit/antispam/test_fuzz_regressions.py)
    (_rx(r"authenticated"), _rx(r"^from (?>.*?(?:\](?: \([^)]*\))?\)|\)\]) )(?>.*?\()(?>.*?authenticated)(?>.*?\))"
                                r".*? by"),
     lambda m: "Sendmail"),
    (_rx(r" by mail\.gmx\."),
     _rx(r"from \S* \((?:HELO|EHLO) (\S*)\) \[({IP})\] by (mail\.gmx\.(?:net|com)) \([^)]+\) with ((?:ESMTP|SMTP))"),
     lambda m: f"GMX ({m.group(4)} / {m.group(3)})"),
    (_rx(r" \(authenticated as "), _rx(r"\) by .+ \(\d{1,2}\.\d\.\d{3}(?:\.\d{1,3})?\) \(authenticated as .+\) id "),
     lambda m: "CriticalPath"),
    (_rx(r"\(Authenticated sender: "), _rx(r"\) \(Authenticated sender: \S+\) by \S+ \(([^)]+)\) with "),
     lambda m: "Postfix" if m.group(1) == "Postfix" else f"Postfix ({m.group(1)})"),
    (_rx(r"CommuniGate Pro (?:HTTP|SMTP|XIMSS|IMAP)"), _rx(r" \(account "), lambda m: "Communigate"),
    (None, _rx(r" with Microsoft Exchange Server HTTP-DAV\b"), lambda m: "HTTP-DAV"),
    (_rx(r" by "), _rx(r" \(via (HTTP.?)\)(?: |;|$)", re.I), lambda m: m.group(1)),
]

_ENVFROM = _rx(r"(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b", re.I)

# Formats recognised by a product marker: (marker, formats); only the first marker present is
# tried (the formats below are tried whatever happens here).
_PRODUCT: list[tuple[re.Pattern[str], list[_Format]]] = [
    (_rx(r" SMTPSVC"), [
        _f(r"^(?P<helo>\S*) \(\[(?P<ip>{IP})\][^)]{0,40}\) by (?P<by>\S+) with Microsoft SMTPSVC"),
    ]),
    (_rx(r" with (?:Microsoft SMTP Server|mapi id) (?:\([^)]+\) )?\d+\.\d+\.\d+\.\d+(?:$| )"), [
        _f(r"^(?P<helo>\S+) \(\[?(?P<ip>{IP})(?:%[A-Z0-9._~-]*)?\]?\) by (?P<by>\S+) (?P<noid>)"),
    ]),
    (_rx(r"\[XMail "), [
        _f(r"^(?P<helo>\S+) \((?P<ip>\[?{IP}\]?)(?::\d+)\) by (?P<by>\S+)(?: \(\S+\))? with \[XMail(?P<xmail>)"),
    ]),
    (_rx(r"\(ecelerity\b"), [
        _f(r"^\(\[(?P<ip>{IP}):\d+\] helo=(?P<helo>\S+)\) by (?P<by>\S+) "),
        _f(r"^\S+ \(\[(?P<ip>{IP}):\d+\]\) by (?P<by>\S+) "),
    ]),
    (_rx(r"Exim"), []),  # handled in _parse_exim
    (_rx(r" \(Postfix\) with"), [
        _f(r"^(?P<helo>\S+) \((?P<rdns>\S+) \[(?P<ip>{IP})\]\) by (?P<by>\S+) ", dns=True),
        _f(r"^(?P<helo>\S+) \((?P<rdns>\S+)\[(?P<ip>{IP})\]\) by (?P<by>\S+) ", dns=True),
    ]),
    (_rx(r"\(Scalix SMTP Relay"), [
        _f(r"^(?P<helo>\S+) \( ?(?P<ip>{IP})\) by (?P<by>\S+)"),
    ]),
    (_rx(r" \(Lotus Domino "), [
        _f(r"^(?P<helo>\S+) \(\[(?P<ip>{IP})\]\) by (?P<by>\S+) \(Lotus"),
    ]),
]

_QMAIL_LDAP = _rx(r" by \S+ \(qmail-\S+\) with ")
_SENDMAIL = _f(r"^(?P<helo>\S+) \((?P<rdns>\S+) \[(?P<ip>{IP})\].*\) by (?P<by>\S+) \(", dns=True)
# qmail and its patches. ``( \(.+\))*`` of the original is written ``(?: \(.+\))?``: the same
# strings (one ``\(.+\)`` spans several parenthesised groups), without exponential backtracking.
_QMAIL = _rx(r"^\S+(?: \((?:HELO|EHLO) \S*\))? \((?:\S+@)?\[?{IP}\]?\)(?: \(envelope-sender <\S+>\))? by \S+"
             r"(?: \(.+\))? with (?:.* )?(?:SMTP|QMQP)(?! id )")
_QMAIL_FORMS: list[_Format] = [
    _f(r"^(?P<rdns>\S+) \((?:HELO|EHLO) (?P<helo>[^ ()]*)\) \((?P<ident>\S*)@\[?(?P<ip>{IP})\]?\)"
       r"(?: \(envelope-sender <\S+>\))? by (?P<by>\S+)"),
    _f(r"^(?P<rdns>\S+) \((?:HELO|EHLO) (?P<helo>[^ ()]*)\) \(\[?(?P<ip>{IP})\]?\)"
       r"(?: \(envelope-sender <\S+>\))? by (?P<by>\S+)"),
    _f(r"^(?P<helo_rdns>\S+) \((?P<ident>\S*)@\[?(?P<ip>{IP})\]?\)(?: \(envelope-sender <\S+>\))? by (?P<by>\S+)"),
    _f(r"^(?P<helo_rdns>\S+) \(\[?(?P<ip>{IP})\]?\)(?: \(envelope-sender <\S+>\))? by (?P<by>\S+)"),
]

# The formats tried after the product-specific ones, in order. Entries that are not a format:
# "sendmail" (skipped for qmail-ldap headers), "qmail", "fetcher", "skip:<pattern>".
_GENERAL: list[_Format | str] = [
    _f(r"^(?P<helo>\S+) \((?P<rdns>\S+) \[(?P<ip>{IP})\]\) by (?P<by>\S+) with \S+ \(", dns=True),
    _f(r"^(?P<rdns>\S+) \(\[(?P<ip>{IP})\] helo=(?P<helo>\S+)\) by (?P<by>\S+) with "),
    _f(r"^(?P<helo>\S+) \(<unknown\S*>\[(?P<ip>{IP})\]\) by (?P<by>\S+) "),
    _f(r"^(?P<helo>\S+) \((?P<rdns>\S+\.\S+)\[(?P<ip>{IP})\]\) by (?P<by>\S+) ", dns=True),
    _f(r"^(?P<helo>\S+) \((?P<ident>\S*)@\[(?P<ip>{IP})\].*\) by (?P<by>\S+) \(", dns=True),
    "hotmail",
    _f(r"^(?P<rdns>\S+) \((?:HELO|EHLO) (?P<helo>\S*)\) \((?P<ip>{IP})\) by (?P<by>\S+) \(qpsmtpd/\S+\) with (?:ESMTP|SMTP)"),
    _f(r"^(?P<rdns>\S+) \(LHLO (?P<helo>\S*)\) \((?P<ip>{IP})\) by (?P<by>\S+) with LMTP"),
    _f(r"^(?P<rdns>\S+) \((?:HELO|EHLO) (?P<helo>\S*)\) \[(?P<ip>{IP})\] by (?P<by>\S+) \([^)]+\) with (?:ESMTP|SMTP)"),
    _f(r"^(?P<helo>\S+) \(\[(?P<ip>{IP})\]\) by (?P<by>\S+) via smtpd \(for \S+\) with SMTP\("),
    "qmail",
    _f(r"^\[(?P<ip>{IP})\] by (?P<by>\S+) via HTTP$"),
    _f(r"^\S+ \( \[(?P<ip>{IP})\]\).*? by (?P<by>\S+) "),
    _f(r"^\((?P<helo>\S+) \[(?P<ip>{IP})\]\) by (?P<by>\S+) "),
    _f(r"^\[(?P<ip>{IP})\] by (?P<by>\S+) "),
    _f(r"^\(\[?(?P<ip>{IP})\]?\) by (?P<by>\S+) "),
    _f(r"^(?P<helo>\S+) \[(?P<ip>{IP})\] by (?P<by>\S+) \[{IP}\] with ", dns=True),
    _f(r"^(?P<helo>\S+) \[\((?P<ip>{IP})\)\] by (?P<by>\S+) \({IP}\) "),
    _f(r"^(?P<helo>\S+) \(\[(?P<ip>{IP})\]\) by (?P<by>\S+) \(", dns=True),
    "softdnserr",
    _f(r"^(?P<helo>\S+) \(\[(?P<ip>{IP})(?:[.:]\d+)?\]\).*? by (?P<by>\S+) ", dns=True),
    _f(r"^(?P<helo>\S+) \((?P<rdns>\S+) \[(?P<ip>{IP})\]\)(?: \(authenticated bits=\d+\))? by (?P<by>\S+) \(", dns=True),
    "fetcher",
    _f(r"^(?P<rdns>\S+) \((?:HELO|EHLO) (?P<helo>[^)]*)\) \((?:(?P<ident>\S*)@)?\[?(?P<ip>{IP})\]?\).* by (?P<by>\S+) ",
       dns=True),
    _f(r"^(?P<helo_rdns>\S+) \((?:(?P<ident>\S*)@)?\[?(?P<ip>{IP})\]?\).* by (?P<by>\S+) ", dns=True),
    _f(r"^\[(?P<ip>{IP})\] by (?P<by>\S+) with http for "),
    _f(r"^(?P<rdns>\S+)\((?P<ip>{IP})\) by (?P<by>\S+) via smap ", dns=True),
    _f(r"^(?P<rdns>\S+)\((?P<ip>{IP}), (?:HELO|EHLO) (?P<helo>\S*)\) by (?P<by>\S+) via smap ", dns=True),
    _f(r"^\[(?P<ip>{IP})\] by (?P<by>\S+) \(Post"),
    _f(r"^\[(?P<ip>{IP})\] by (?P<by>\S+) \(ArGoSoft"),
    _f(r"^(?P<ip>{IP}) by (?P<by>\S+) \((?:SMTPL|InterScan)\b"),
    "skip:^\\S+ by \\S+ with BSMTP",
    _f(r"^(?P<helo>\S+) \((?P<rdns>\S+) \[(?P<ip>{IP})\]\) by (?P<by>\S+) with ", dns=True),
    _f(r"^(?P<rdns>\S+) \((?:HELO|EHLO) (?P<helo>\S*)\) \((?:(?P<ident>\S+)@)?(?P<ip>{IP}).*?\) by (?P<by>\S+) with ",
       dns=True),
    _f(r"^\[(?P<ip>{IP})\] \((?:account \S+ )?(?:HELO|EHLO) (?P<helo>\S*)\) by (?P<by>\S+) \("),
    "communigate",
    _f(r"^\(\[(?P<ip>{IP})\]\) by (?P<by>\S+) with "),
    _f(r"^(?P<helo>[^\d]\S+) \((?P<ip>{IP})\) by (?P<by>\S+) "),
    "skip:^\\S+ \\(\\S+\\) by \\S+ \\(Content Technologies ",
    _f(r"^(?P<helo>\S+) \(\[(?P<ip>{IP})\] \[\S+\]\) by (?P<by>\S+) with "),
    _f(r"^(?P<ip>{IP}) by (?P<by>\S+) with "),
    _f(r"^(?P<helo>\S+) \((?P<rdns>\S+)\[(?P<ip>{IP})\]\) by (?P<by>\S+) ", dns=True),
    _f(r"^\[(?P<ip>{IP})\]\S+ \((?:HELO|EHLO) (?P<helo>\S*)\) by (?P<by>\S+) "),
    _f(r"^(?P<ip>{IP}) \((?:HELO|EHLO) (?P<helo>\S*)\) by (?P<by>\S+) "),
    _f(r"^(?P<helo>\S+) \[(?P<ip>{IP})\] by (?P<by>\S+) "),
    _f(r"^(?P<rdns>\S+)\((?P<ip>{IP})\) by (?P<by>\S+) "),
    _f(r"^\[(?P<ip>{IP})\] by (?P<by>\S+) \(MailGate "),
    _f(r"^(?P<helo>\S+) \(unverified \[(?P<ip>{IP})\]\) by (?P<by>\S+) "),
    _f(r"^(?P<ip>{IP}) \([A-Za-z][^)]+\) by (?P<by>\S+) with "),
    "bracket_sub",
    _f(r"^(?P<rdns>\S+) \((?:\S+@)?(?P<ip>{IP})\) by (?P<by>\S+) with "),
    "obtuse",
    _f(r"^(?P<helo>\S+) \((?:\S+)@(?P<ip>{IP}) with login\) by (?P<by>\S+\.yahoo\.com) with SMTP"),
    _f(r"^X-Originating-IP: (?P<ip>{IP})$(?P<noby>)"),
]
_GENERAL_SKIPS = [_rx(p) for p in (
    r"^\S+ \([^\s@]+@{LOCALHOST}\) by \S+ \(",
    r"^\S+ \S+ by \S+ with local-e?smtp ",
    r"^127\.0\.0\.1 \(AVG SMTP \S+ \[\S+\]\)",
    r"^\S+@\S+ by \S+ by uid \S+ ",
    r"^\S+@\S+ by \S+ ",
    r"^Unknown/Local \(",
    r"^{LOCALHOST} \((?:\S+@)?{LOCALHOST}[)\[]",
    r"^\S+ \((?:\S+@)?{LOCALHOST}\) ",
    r"^\S+ \(\S+@\S+ \[{LOCALHOST}\]\) ",
    r"^\(AUTH: \S+\) by \S+ with ",
    r"^localhost \(localhost \[\[UNIX: localhost\]\]\) by ",
    r"^\S+\.amazon\.com by \S+\.amazon\.com with ESMTP \(peer crosscheck: ",
    r"^[^.]+ by \S+ with Novell_GroupWise",
    r"^no\.name\.available by \S+ via smtpd \(for ",
)]
_QMAIL_SCANNER = _rx(r"^\S+ by \S+ \(.{0,100}\) with qmail-scanner")
_GENERAL_SKIPS_2 = [_rx(p) for p in (
    r"^\S+ by \S+ with local",
    r"^\S+ \(\[unix socket\]\) by \S+ \(Cyrus v[0-9]*?\.[0-9]*?\.[0-9]*?\) with LMTPA",
    r"^\S+ by \S+ (?:with|via|for|\()",
    r"^\S+ (?:(?:with|via|for) \S+|\(unverified\)) by\b",
    r"^\S+ \(unknown\) by \S+ \(SG\) with \b",
    r"^\S+ \(\S+ \[local\]\) by \S+ \(OpenSMTPD\) with \b",
    r"\(LSMTP for",
    r"^\(\[{LOCALHOST}\]\) with MailEnable ",
    r"^facebook\.com \([^)]+\) by facebook\.com with Thrift id \S+$",
    r"^\S+ named \S+ by gmailapi\.google\.com with HTTPREST$",
    r"^\S+ id \S+$",
    r"^\[<.*? \(Jetsend",
)]
_SPECIAL = {
    "hotmail": _rx(r"by (\S+\.hotmail\.msn\.com) "),
    "hotmail_ip": _rx(r"^({IP}) "),
    "softdnserr": _rx(r"^(\S+) \((\S+) \[({IP})\]\).*? by (\S+)\b"),
    "fetcher": _rx(r"with (?:POP3|IMAP)"),
    "with_http": _rx(r"\bwith HTTP\b"),
    "communigate_guard": _rx(r" \(CommuniGate Pro"),
    "communigate": _rx(r"^(\S+) \(\[({IP})\] verified\) by (\S+) \("),
    "bracket_sub": _rx(r"^\[({IP})\] \(([^)]+)\) by (\S+) "),
    "obtuse": _rx(r"^(\S+)\(({IP})\)(?:, claiming to be \"(\S+)\")? via \S+ by (\S+),"),
    "squirrel_guard": _rx(r" \((?:SquirrelMail|NaSMail) authenticated user "),
    "squirrel": _rx(r"({IP})\b(?![.-]).{10,80}by (\S+) with HTTP"),
    "aol": _rx(r"({IP}) by (\S+) \({IP}\) with HTTP \(WebMailUI\)"),
    "http": _rx(r"^({IP}) \(\[{IP}\]\) by (\S+)"),
    "mspickup": _rx(r"^mail pickup service by (\S+) with Microsoft SMTPSVC$"),
    "xmail_id": _rx(r" id <(\S+)>"),
    "xmail_from": _rx(r" from <(\S+)>"),
    "helo_guess": _rx(r"^(\S+)[^-A-Za-z0-9.]"),
    "simta": _rx(r"^(\S+) \((\S+) \[({IP})\]\) BY (\S+) (?:\([^)]+\) WITH SMTP )?ID <?(\S+?)>?(?: FOR <[^>]+>)?$"),
    "navgw": _rx(r"^(\S*) \[({IP})\]\) by (\S+) \(NAVGW .*?\) with "),
    "sendmail_local": _rx(r"^\S+@localhost\) by \S+ "),
    "jqueuemail": _rx(r"^[^\s@]+@[^)]+\) by \S+\(jqueuemail\) id [^\s;]+"),
    "fallback_ip": _rx(r"\[({IP})\]"),
}
_EXIM = {
    "local": _rx(r"\bwith local(?:-\S+)? "),
    "bracket": _rx(r"^\[({IP})\] \((.*?)\) by (\S+) "),
    "rdns": _rx(r"^(\S+) \(\[({IP})\](.*?)\) by (\S+) "),
    "plain": _rx(r"^(\S+) \[({IP})\](:\d+)? by (\S+) "),
    "p_rdns": _rx(r"^(\S+) "),
    "p_helo": _rx(r" \((\S+)\) "),
    "p_ip": _rx(r" \[({IP})(?:\.\d+)?\] "),
    "p_by": _rx(r"by (\S+) "),
}
_SUB_HELO = _rx(r"helo=(\S+)")
_SUB_IDENT = _rx(r"ident=(\S*)")
_MAPPED_V4 = possessive.compile(r"^0*:0*:(?:0*:)*ffff:(\d+\.\d+\.\d+\.\d+)$", re.I | re.ASCII)
_STRIP = possessive.compile(r"[\s\x00#\[\]()<>|]")
_ENV_LEAD = possessive.compile(r"^\s*<*", re.ASCII)
_ENV_TRAIL = possessive.compile(r">*\s*$", re.ASCII)
_IDENT_PREFIXES = (possessive.compile(r"^IDENT:([^@]*)@"), possessive.compile(r"^([^@]*)@"))
_SKIPS = {e: _rx(e[5:]) for e in _GENERAL if isinstance(e, str) and e.startswith("skip:")}
_FROM = possessive.compile(r"\(?from ", re.I)
_BRACKET_V4 = possessive.compile(r"^\[[\d.]+\]$", re.ASCII)
_ZONE = possessive.compile(r"%[A-Z0-9._~-]*\Z", re.I)


def _clean_envfrom(env: str) -> str:
    return _STRIP.sub("!", _ENV_TRAIL.sub("", _ENV_LEAD.sub("", env, count=1), count=1))


def _apply(f: _Fields, m: re.Match[str], dns: bool) -> None:
    g = m.groupdict()
    for name, value in g.items():
        if value is None:
            continue
        if name == "helo_rdns":
            f.helo = f.rdns = value
        elif name == "noid":
            f.id = ""
        elif name == "noby":
            f.by = ""
        elif name in ("ip", "rdns", "helo", "by", "ident"):
            setattr(f, name, value)
    if dns:
        f.dns = True


def _sub(pattern: re.Pattern[str], text: str) -> tuple[str | None, str]:
    """Perl's ``$s =~ s/x(y)//``: the capture and the text without the first match."""
    m = pattern.search(text)
    if m is None:
        return None, text
    return m.group(1), text[:m.start()] + text[m.end():]


def _bracket_sub(f: _Fields, ip: str, sub: str, by: str) -> None:
    f.ip, f.by = ip, by
    helo, sub = _sub(_SUB_HELO, sub)
    if helo is not None:
        f.helo = helo
    ident, sub = _sub(_SUB_IDENT, sub)
    if ident is not None:
        f.ident = ident


def _parse_exim(f: _Fields, s: str) -> bool:
    """Exim's many formats; True when the header is parsed."""
    if _EXIM["local"].search(s):
        raise _Skip
    m = _EXIM["bracket"].search(s)
    if m:
        _bracket_sub(f, m.group(1), m.group(2), m.group(3))
        return True
    m = _EXIM["rdns"].search(s)
    if m:
        f.rdns = f.helo = m.group(1)
        _bracket_sub(f, m.group(2), m.group(3), m.group(4))
        return True
    m = _EXIM["plain"].search(s)
    if m:
        f.rdns = f.helo = m.group(1)
        f.ip, f.by = m.group(2), m.group(4)
        return True
    # odd formats: collect what is there; a "by" and an IP are enough
    by = _fill(f, s, ((_EXIM["p_rdns"], "rdns"), (_EXIM["p_helo"], "helo"), (_EXIM["p_ip"], "ip"),
                      (_EXIM["p_by"], "by")))
    return bool(by and f.ip)


def _fill(f: _Fields, s: str, fields: tuple[tuple[re.Pattern[str], str], ...]) -> re.Match[str] | None:
    """Each pattern's first group into its field where it matches; the last pattern's match."""
    m = None
    for rx, attr in fields:
        m = rx.search(s)
        if m:
            setattr(f, attr, m.group(1))
    return m


def _parse_from(f: _Fields, s: str) -> bool:
    """The header after ``from ``: True when a format matched (fields filled), False to fall
    through to the generic guess. Raises _Skip for handovers to ignore."""
    low = s.lower()  # (_ENVFROM ignores ASCII case: its literals, lower-cased, are in this)
    m = _ENVFROM.search(s) if "return-path" in low or "envelope-" in low else None
    if m:
        f.envfrom = m.group(1)
    if _SPECIAL["squirrel_guard"].search(s):
        m = _SPECIAL["squirrel"].search(s)
        if m:
            f.ip, f.by = m.group(1), m.group(2)
            return True
    if "aol.com" in s and "with HTTP (WebMailUI)" in s:
        m = _SPECIAL["aol"].search(s)
        if m:
            f.ip, f.by = m.group(1), m.group(2)
            return True
    for marker, formats in _PRODUCT:
        if not marker.search(s):
            continue
        if marker.pattern == "Exim":
            if _parse_exim(f, s):
                return True
        elif marker.pattern == " SMTPSVC" and _SPECIAL["mspickup"].search(s) and not formats[0][0].search(s):
            raise _Skip
        for rx, dns in formats:
            m = rx.search(s)
            if m:
                _apply(f, m, dns)
                if "xmail" in rx.groupindex:
                    _fill(f, s, ((_SPECIAL["xmail_id"], "id"), (_SPECIAL["xmail_from"], "envfrom")))
                if "(Lotus" in rx.pattern:
                    f.dns = False
                return True
        break
    if _SPECIAL["with_http"].search(s):
        m = _SPECIAL["http"].search(s)
        if m:
            f.ip, f.by = m.group(1), m.group(2)
            return True
    if not _QMAIL_LDAP.search(s):
        m = _SENDMAIL[0].search(s)
        if m:
            _apply(f, m, True)
            for prefix in _IDENT_PREFIXES:
                mm = prefix.search(f.rdns)
                if mm:
                    f.ident = mm.group(1)
                    f.rdns = f.rdns[mm.end():]
            return True
    for entry in _GENERAL:
        if isinstance(entry, tuple):
            m = entry[0].search(s)
            if m:
                _apply(f, m, entry[1])
                return True
            continue
        if entry.startswith("skip:"):
            if _SKIPS[entry].search(s):
                raise _Skip
        elif entry == "hotmail":
            m = _SPECIAL["hotmail"].search(s)
            if m:
                f.by = m.group(1)
                mm = _SPECIAL["hotmail_ip"].search(s)
                if mm:
                    f.ip = mm.group(1)
                return True
        elif entry == "qmail":
            if _QMAIL.search(s):
                for rx, _dns in _QMAIL_FORMS:
                    m = rx.search(s)
                    if m:
                        _apply(f, m, False)
                        break
                if f.rdns != "unknown":
                    f.dns = True
                else:
                    f.rdns = ""
                return True
        elif entry == "softdnserr":
            m = _SPECIAL["softdnserr"].search(s)
            if m:
                if m.group(2) == "softdnserr":
                    f.dns = False
                else:
                    f.dns, f.rdns = True, m.group(2)
                f.helo, f.ip, f.by = m.group(1), m.group(3), m.group(4)
                return True
        elif entry == "fetcher":
            if _SPECIAL["fetcher"].search(s):
                raise _Fetcher
        elif entry == "communigate":
            if _SPECIAL["communigate_guard"].search(s):
                m = _SPECIAL["communigate"].search(s)
                if m:
                    f.dns = True
                    f.rdns = f.helo = m.group(1)
                    f.ip, f.by = m.group(2), m.group(3)
                    return True
        elif entry == "bracket_sub":
            m = _SPECIAL["bracket_sub"].search(s)
            if m:
                _bracket_sub(f, m.group(1), m.group(2), m.group(3))
                return True
        elif entry == "obtuse":
            m = _SPECIAL["obtuse"].search(s)
            if m:
                f.rdns, f.ip, f.helo, f.by = m.group(1), m.group(2), m.group(3) or "", m.group(4)
                if m.group(1) != "UNKNOWN":
                    f.dns = True
                return True
    for rx in _GENERAL_SKIPS:
        if rx.search(s):
            raise _Skip
    if _QMAIL_SCANNER.search(s):
        env = f.envfrom
        if env is not None:
            env = _clean_envfrom(env)
        raise _QmailScanner(env)
    for rx in _GENERAL_SKIPS_2:
        if rx.search(s):
            raise _Skip
    if not f.helo:
        m = _SPECIAL["helo_guess"].search(s)
        if m:
            f.helo = m.group(1)
    return False


def parse_received(header: str) -> Relay | None:
    """One Received header as a relay record; None when unparseable. Raises _Skip (and its
    subclasses) for headers that describe no network handover."""
    s = " ".join(header[:MAX_LINE].split())
    while s.endswith(";"):  # stray semicolons at the end
        s = s[:-1].removesuffix(" ")
    if not _FROM.match(s):
        raise _Skip
    # (each ``in`` below is a literal every match of the expression after it holds: a scan in C
    # that spares the expression's try at every position of most headers)
    if "with local for" in s and _SKIP_FIRST[0].search(s):
        raise _Skip
    m = _NO_IP_BY.search(s)
    if m and not _BRACKET_V4.match(m.group(1)):
        raise _Skip
    s = _DATE.sub("", s, count=1)
    s = s.replace(")by ", ") by ", 1)
    f = _Fields()
    m = _ID.search(s)
    if m:
        f.id = m.group(1)
    m = (_HELO_EQ.search(s) if "helo=" in s else None) \
        or (_HELO_CMD.search(s) if "HELO " in s or "EHLO " in s else None)
    if m:
        f.helo = m.group(1)
    m = _BY.search(s)
    if m:
        f.by = m.group(1)
    for guard, rx, make in _AUTH:
        if guard is not None and not guard.search(s):
            continue
        m = rx.search(s)
        if m:
            f.auth = make(m)
            break
    parsed = False
    if s.startswith("from "):
        s = s[5:]
        parsed = _parse_from(f, s)
    elif s.startswith("FROM "):
        s = s[5:]
        m = _SPECIAL["simta"].search(s)
        if m:
            f.dns = True
            f.helo, f.rdns, f.ip, f.by, f.id = m.groups()
            if f.rdns == "unverified":
                f.rdns = ""
            parsed = True
    elif s.startswith("(from "):
        s = s[6:]
        m = _SPECIAL["navgw"].search(s)
        if m:
            f.helo, f.ip, f.by = m.groups()
            parsed = True
        elif _SPECIAL["sendmail_local"].search(s) or _SPECIAL["jqueuemail"].search(s):
            raise _Skip
    if not parsed:
        if not f.ip:
            m = _SPECIAL["fallback_ip"].search(s)
            if m:
                f.ip = m.group(1)
        if not (f.ip and f.by):
            return None
    return _finish(f)


def _finish(f: _Fields) -> Relay:
    rdns = f.rdns.rstrip(".")
    if rdns.lower() == "unknown" or rdns.startswith("["):
        rdns = ""
    ip = f.ip
    if ip[:5].lower() == "ipv6:":
        ip = ip[5:]
    ip = _ZONE.sub("", ip.removeprefix("[").removesuffix("]"))
    m = _MAPPED_V4.match(ip)
    if m:
        ip = m.group(1)
    by = f.by.removesuffix(";")
    envfrom = f.envfrom
    if envfrom is not None:
        envfrom = _clean_envfrom(envfrom)
    r = Relay(ip=_STRIP.sub("!", ip), rdns=_STRIP.sub("!", rdns), helo=_STRIP.sub("!", f.helo),
              by=_STRIP.sub("!", by), ident=_STRIP.sub("!", f.ident), envfrom=envfrom, id=f.id, auth=f.auth)
    if not r.rdns:
        if f.dns:
            r.no_reverse_dns = True
        else:
            r.rdns_not_in_headers = True
    r.ip_private = is_private_ip(r.ip)
    return r


# -- the whole path -------------------------------------------------------------------------------
@dataclass(slots=True)
class RelayPath:
    trusted: list[Relay] = field(default_factory=list)
    untrusted: list[Relay] = field(default_factory=list)
    internal: list[Relay] = field(default_factory=list)
    external: list[Relay] = field(default_factory=list)
    unparseable: int = 0
    last_trusted_index: int = -1  # Received headers counted from the top (0-based)
    last_internal_index: int = -1

    def pseudo_header(self, which: str) -> str:
        """``Trusted``, ``Untrusted``, ``Internal`` or ``External`` (any case)."""
        relays = {"trusted": self.trusted, "untrusted": self.untrusted, "internal": self.internal,
                  "external": self.external}[which.lower()]
        return " ".join(r.as_string() for r in relays)


def relay_path(received: Sequence[str], trust: TrustConfig | None = None,
               originating_ips: Sequence[str] = ()) -> RelayPath:
    """The trust path of a message: ``received`` its Received header values, newest first;
    ``originating_ips`` the values of the ORIGINATING_IP_HEADERS present, in that order."""
    trust = trust or TrustConfig()
    trusted_set, internal_set, msa_set = trust.netsets()
    configured = trusted_set is not None
    lines = list(received[:MAX_RECEIVED])
    for value in originating_ips:
        m = _IP_RE.search(value)
        if m:
            lines.append(f"from X-Originating-IP: {m.group(0)}")
    p = RelayPath()
    in_trusted = in_internal = True
    found_msa = False
    allow_fetch_markers = True
    qms_envfrom: str | None = None
    for line in lines:
        carried, qms_envfrom = qms_envfrom, None
        try:
            relay = parse_received(line)
        except _QmailScanner as e:
            qms_envfrom = e.envfrom
            relay = None
        except _Fetcher:
            if allow_fetch_markers:
                p.trusted, p.internal, p.external = [], [], []
            relay = None
        except _Skip:
            relay = None
        else:
            if relay is None:
                p.unparseable += 1
        if relay is None:
            p.last_trusted_index += in_trusted
            p.last_internal_index += in_internal
            continue
        if carried is not None:
            relay.envfrom = carried
        if in_trusted and not found_msa:
            if not configured:
                if not (relay.ip_private or relay.auth):
                    in_trusted = in_internal = False
            else:
                assert trusted_set is not None and internal_set is not None
                if not relay.auth and not trusted_set.contains(relay.ip):
                    if trust.originating:
                        found_msa = True
                    else:
                        in_trusted = False
                    in_internal = False
                else:
                    if in_internal and not relay.auth and not internal_set.contains(relay.ip):
                        in_internal = False
                    if msa_set.contains(relay.ip):
                        found_msa = True
                        relay.msa = True
        relay.internal = in_internal
        if in_trusted:
            p.trusted.append(relay)
            allow_fetch_markers = True
            p.last_trusted_index += 1
        else:
            p.untrusted.append(relay)
            allow_fetch_markers = False
        if in_internal:
            p.internal.append(relay)
            p.last_internal_index += 1
        else:
            p.external.append(relay)
    return p
