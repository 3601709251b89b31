"""URL extraction and host normalisation (RFC 3986), shared by the uri rules, Bayes and URIBL.

Spammers obfuscate links: ``hxxp://``, ``example[.]com``, ``example(dot)com``, percent-encoded
or IDN hosts, decimal/hex/octal IPs (``http://3627733038/``). We undo those before lookups.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import unquote

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
_HOST = re.compile(r"^[a-z0-9._\-\u00a0-\uffff]+$")


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
    """Absolute-looking URLs in plain text, de-obfuscated, in order of appearance (deduplicated)."""
    out: dict[str, None] = {}
    for m in _SCHEME_URL.finditer(deobfuscate(text)):
        u = m.group(0).rstrip(".,;:!?)'\"")
        if u.lower().startswith("www"):
            u = "http://" + u
        out[u] = None
        if len(out) >= limit:
            break
    return list(out)


def normalize_link(link: str) -> str | None:
    """A link from HTML (href/src) made absolute-looking, or None when it is not a web link."""
    link = deobfuscate(link.strip())
    low = link.lower()
    if low.startswith(("http://", "https://", "ftp://")):
        return link
    if low.startswith("www."):
        return "http://" + link
    if low.startswith("//"):
        return "http:" + link
    return None


@lru_cache(maxsize=4096)
def url_host(url: str) -> str | None:
    """Lower-case host of a URL (IDN to A-labels, obfuscated IPs to dotted quads), or None."""
    m = re.match(r"(?i)^[a-z][a-z0-9+.\-]*://([^/?#]*)", url)
    if not m:
        return None
    auth = unquote(m.group(1))
    host = auth.rsplit("@", 1)[-1]
    if host.startswith("["):
        h = host[1:].split("]", 1)[0]
        try:
            return str(ipaddress.ip_address(h))
        except ValueError:
            return None
    host = host.split(":", 1)[0].strip().rstrip(".").lower()
    host = host.replace("\u3002", ".").replace("\uff0e", ".")
    if not host or not _HOST.match(host):
        return None
    ip = parse_obfuscated_ip(host)
    if ip:
        return ip
    try:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None


def parse_obfuscated_ip(host: str) -> str | None:
    """``3627733038``, ``0xd8.0x3a.0xd6.0x4e``, ``0330.072.0326.0116`` -> dotted quad."""
    if re.fullmatch(r"\d{1,10}", host):
        n = int(host)
        return str(ipaddress.IPv4Address(n)) if n < 2**32 and n > 255 else None
    parts = host.split(".")
    if len(parts) != 4:
        return None
    vals = []
    for p in parts:
        try:
            if p.lower().startswith("0x"):
                vals.append(int(p, 16))
            elif len(p) > 1 and p.startswith("0"):
                vals.append(int(p, 8))
            elif p.isdigit():
                vals.append(int(p))
            else:
                return None
        except ValueError:
            return None
    if any(v > 255 for v in vals):
        return None
    return ".".join(map(str, vals))


_psl = None


def org_domain(host: str) -> str:
    """The organisational (registered) domain via the Public Suffix List; IPs unchanged."""
    global _psl
    if host[:1].isdigit() or ":" in host:  # an IP literal starts with a digit or has a colon
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
    if _psl is None:
        from publicsuffix2 import PublicSuffixList

        _psl = PublicSuffixList()
    return _org_cached(host)


@lru_cache(maxsize=8192)
def _org_cached(host: str) -> str:
    assert _psl is not None
    org = _psl.get_public_suffix(host, wildcard=True, strict=False) or host
    if "." not in org:
        # a TLD missing from the list (.test, .example, new gTLDs): the default rule "*"
        # of the PSL algorithm makes the last label the suffix, so keep two labels
        labels = host.split(".")
        org = ".".join(labels[-2:]) if len(labels) >= 2 else host
    return str(org)
