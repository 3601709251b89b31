"""URL extraction and host normalisation (RFC 3986), shared by the uri rules, Bayes and URIBL.

Spammers obfuscate links: ``hxxp://``, ``example[.]com``, ``example(dot)com``, percent-encoded
or IDN hosts, decimal/hex/octal IPs (``http://3627733038/``, ``http://0x7f000002/``). We undo
those before lookups; numeric hosts are read as browsers read them (WHATWG URL Standard,
section 3.5 "IPv4 parser").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from urllib.parse import unquote

import idna

from gateway_milter.auth import psl

MAX_URLS = 500

# "(?i)\b(?:(?:https?|hxxps?|h\*\*ps?|ftp)://|www\d?\.)" written to start with a plain character
# class: the regex engine then skips to the next h, f or w in C instead of trying the case-blind
# alternatives at every position (0.06 instead of 0.33 ms on a 5 KB message). The same matches:
# "\b" before a word character is "no word character before it", and no other character than
# these six folds to h, f or w.
_SCHEME_URL = re.compile(r"[hHfFwW](?<!\w[hHfFwW])"
                         r"(?i:(?<=[hH])(?:ttps?|xxps?|\*\*ps?)://|(?<=[fF])tp://|(?<=[wW])ww\d?\.)"
                         r"""[^\s<>"'`{}|\\^\[\]]{1,2000}""")
_DEOBF = [
    (re.compile(r"(?i)\s*[\[\(\{]\s*(?:\.|dot)\s*[\]\)\}]\s*"), "."),
    (re.compile(r"(?i)\bhxxp"), "http"),
    (re.compile(r"(?i)\bh\*\*p"), "http"),
]
_HOST = re.compile(r"^[a-z0-9._\-\u00a0-\U0010ffff]+$")  # (an emoji or CJK Extension B label too)
_ASCII_HOST = re.compile(r"^[a-z0-9._-]+$")


_DEOBF_QUICK = re.compile(r"[\[\(\{]\s*(?:\.|[dD][oO][tT])\s*[\]\)\}]")  # what the first one needs


def deobfuscate(text: str) -> str:
    # most text has nothing to undo: a cheap necessary condition first (the substitutions'
    # leading \s* and (?i) make them scan slowly; 0.04 instead of 0.4 ms on a 5 KB message)
    low = text.lower()
    if "hxxp" not in low and "h**p" not in low and _DEOBF_QUICK.search(text) is None:
        return text
    for rx, rep in _DEOBF:
        text = rx.sub(rep, text)
    return text


def find_urls(text: str, limit: int = MAX_URLS) -> list[str]:
    """Absolute-looking URLs in plain text, de-obfuscated, in order of appearance, deduplicated
    and bounded as :func:`bounded` bounds them."""
    return bounded(_text_urls(text), limit)


def _text_urls(text: str) -> Iterator[str]:
    for m in _SCHEME_URL.finditer(deobfuscate(text)):
        u = m.group(0).rstrip(".,;:!?)'\"")
        yield "http://" + u if u.lower().startswith("www") else u


def bounded(urls: Iterable[str], limit: int = MAX_URLS) -> list[str]:
    """The distinct URLs of ``urls``: the first ``limit``, then those whose host is not among
    theirs, up to ``limit`` more (read no further): 500 tracking links to one host no longer
    hide a link to another (a listed one) after them."""
    out: dict[str, None] = {}
    hosts: set[str | None] | None = None  # past the limit: the hosts kept
    for u in urls:
        if u in out:
            continue
        if hosts is None:
            out[u] = None
            if len(out) >= limit:
                hosts = {url_host(x) for x in out}
        elif (h := url_host(u)) not in hosts:
            hosts.add(h)
            out[u] = None
            if len(out) >= 2 * limit:
                break
    return list(out)


_URL_WS = re.compile(r"[\t\r\n]")
# a special scheme and the slashes after it, "\" among them (browsers read "\" as "/" there)
# (none at all too: "http:evil.test" goes to evil.test, as SpamAssassin and browsers read it)
_SPECIAL_START = re.compile(r"(?i)^(https?|ftp):[/\\]*")


def normalize_link(link: str) -> str | None:
    """A link from HTML (href/src) made absolute-looking, or None when it is not a web link.
    As browsers read it (WHATWG URL Standard): tabs and line breaks anywhere are dropped, and
    in http(s) and ftp links "\\" is "/" (``http:\\\\host\\`` goes to ``host``)."""
    link = deobfuscate(link.strip())
    if "\t" in link or "\r" in link or "\n" in link:
        link = _URL_WS.sub("", link)
    low = link.lower()
    if low.startswith(("http://", "https://", "ftp://")) and "\\" not in link:
        return link
    m = _SPECIAL_START.match(link)
    if m:
        return m.group(1) + "://" + link[m.end():].replace("\\", "/")
    if low.startswith("www."):
        return "http://" + link
    if low.startswith("//"):
        return "http:" + link
    return None


@lru_cache(maxsize=4096)
def url_host(url: str) -> str | None:
    """Lower-case host of a URL (IDN to A-labels, numeric IPv4 forms to dotted quads), or None
    when it has none a browser would go to (a host ending in a number that is no IPv4 address)."""
    if "\t" in url or "\r" in url or "\n" in url:
        url = _URL_WS.sub("", url)  # (dropped by browsers wherever they are)
    if "\\" in url and _SPECIAL_START.match(url):
        url = url.replace("\\", "/")  # a backslash ends the authority as "/" does
    m = re.match(r"(?i)^[a-z][a-z0-9+.\-]*://([^/?#]*)", url)
    if not m:
        return None
    auth = unquote(m.group(1))
    host = auth.rsplit("@", 1)[-1]
    if host.startswith("["):
        h = host[1:].split("]", 1)[0]
        if "%" in h:  # a zone id: a link-local address of the reader's own network
            return None
        try:
            ip = ipaddress.ip_address(h)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            return str(ip.ipv4_mapped)  # (the IPv4 address it is, for IPv4 lists)
        return str(ip)
    host = host.split(":", 1)[0].strip().rstrip(".").lower()
    host = host.replace("\u3002", ".").replace("\uff0e", ".")
    if not host or not _HOST.match(host):
        return None
    if not host.isascii():
        a_labels = to_ascii(host)
        # (the mapping may make a character no host holds: full-width "＼" or "＠" become "\"
        # and "@", which a browser refuses in a host, and which a DNS name would read as an escape)
        if a_labels is None or not _ASCII_HOST.match(a_labels):
            return None
        host = a_labels
    if _ENDS_IN_NUMBER.search(host):
        return parse_obfuscated_ip(host)
    return host


def to_ascii(host: str) -> str | None:
    """A non-ASCII host as browsers encode it: UTS 46 without the transitional mapping (``faß.de``
    is ``xn--fa-hia.de``, where Python's IDNA 2003 codec writes ``fass.de``, another domain; ZWJ and
    final sigma kept). The mapping also turns full-width digits and dots into ASCII, so the
    numeric check sees them. A host the idna package refuses (its bidi and joiner rules) is
    tried with the 2003 codec, which is more lenient; None when neither takes it."""
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii").lower()
    except (UnicodeError, ValueError):
        pass
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


# WHATWG "ends in a number": the last label is all digits or a hex number ("0x" alone is 0).
# Such a host is an IPv4 address or no valid host at all, never a domain name.
_ENDS_IN_NUMBER = re.compile(r"(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)$")
_IPV4_PART = re.compile(r"0x(?P<hex>[0-9a-f]*)|0(?P<oct>[0-7]+)|(?P<dec>0|[1-9][0-9]*)")


def parse_obfuscated_ip(host: str) -> str | None:
    """The dotted quad of a numeric IPv4 host, as the WHATWG URL Standard's IPv4 parser reads it:
    one to four parts, each decimal, octal (leading ``0``) or hex (``0x``); every part but the
    last is one byte, the last fills the bytes left. ``3627733038``, ``0xd83ad64e``,
    ``0330.072.0326.0116``, ``127.1`` are addresses; None when the host is not one (a part too
    large, more than four parts, a digit outside its base)."""
    parts = host.lower().split(".")
    if len(parts) > 4:
        return None
    n = 0
    for i, p in enumerate(parts):
        m = _IPV4_PART.fullmatch(p)
        if m is None:
            return None
        base = 16 if m.group("hex") is not None else 8 if m.group("oct") is not None else 10
        digits = (m.group("hex") or m.group("oct") or m.group("dec") or "").lstrip("0")
        if len(digits) > 11:  # more than 32 bits in any base (and int() stays cheap)
            return None
        v = int(digits or "0", base)
        if i < len(parts) - 1:
            if v > 255:
                return None
            n = n << 8 | v
        else:
            left = 8 * (4 - i)  # bits the last part fills
            if v >= 1 << left:
                return None
            n = n << left | v
    return str(ipaddress.IPv4Address(n))


def org_domain(host: str) -> str:
    """The organisational (registered) domain via the Public Suffix List; IPs unchanged. The
    list is :mod:`gateway_milter.auth.psl`'s, the one DMARC reads (``GATEWAY_PSL_FILE`` when
    set, else the packaged snapshot): URIBL and Bayes once read publicsuffix2's own copy,
    whatever that setting named. A TLD missing from the list (``.test``, a gTLD newer than the
    list) makes its last label the suffix (the PSL algorithm's default rule ``*``): two labels
    kept. A host that is itself a public suffix, or no name at all, is returned as it is."""
    if host[:1].isdigit() or ":" in host:  # an IP literal starts with a digit or has a colon
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
    return _org_cached(host)


@lru_cache(maxsize=8192)
def _org_cached(host: str) -> str:
    org = psl.org_domain(host)
    return host if org is None else org
