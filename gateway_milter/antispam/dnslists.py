"""DNS list zones (DNSBL/URIBL, RFC 5782): zone specifications with weights, actions and
return-code filters, and the query names for IPv4, IPv6 and domain lookups.

A zone answers 127.0.0.0/8 addresses; which of them count is set per zone by ``codes``
(addresses or ranges such as ``127.0.0.2-127.0.0.11``) and/or a bit ``mask`` (SURBL-style
multi lists). Answers outside 127/8 are ignored (a zone that stopped working and answers
everything must not list the whole Internet), and so are the answers lists give when they refuse
to answer: 127.255.255.0/24 (Spamhaus: 252 a malformed query, 254 a query through a public
resolver, 255 too many queries), 127.0.1.255 (Spamhaus DBL: an IP address asked for, which it
does not list) and 127.0.0.255, and 127.0.0.1 (URIBL.com's and SURBL's "query refused";
RFC 5782 section 5 reserves it as never listed) unless the zone's ``codes`` name it; for a URI
list (``refusal`` given the zone) 127.0.0.1 is a refusal, as Spamhaus's error answers are. A zone with
no ``codes`` and no ``mask`` would otherwise take such an answer for a listing and, with
``action: refuse``, refuse every client.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

from gateway_milter.layers.base import SettingsError

ACTIONS = ("score", "quarantine", "refuse")
MAX_ZONES = 30
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9_]{1,60}$")
_ZONE = re.compile(r"^(?=.{1,200}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")


@dataclass(frozen=True, slots=True)
class Zone:
    zone: str
    symbol: str
    weight: float = 1.0
    action: str = "score"
    codes: tuple[tuple[int, int], ...] = ()  # inclusive ranges of answer addresses (as ints)
    mask: int = 0
    kind: str = "any"  # uribl: "domain", "ip" or "any"

    def accepts(self, answer: str) -> bool:
        try:
            a = ipaddress.IPv4Address(answer)
        except ValueError:
            return False
        if a not in _LOOPBACK or a in _REFUSED or a in (_BROADCAST, _DBL_NO_IP):
            return False
        n = int(a)
        if self.codes:
            if not any(lo <= n <= hi for lo, hi in self.codes):
                return False
        elif a == _NEVER_LISTED:
            return False
        return not (self.mask and not n & self.mask)

    def names(self, n: int) -> bool:
        """Whether the zone's ``codes`` name the answer ``n`` (an address as an int)."""
        return any(lo <= n <= hi for lo, hi in self.codes)


def refusal(answers: list[str], zone: Zone | None = None) -> str | None:
    """The answer by which a list says it will not answer this query (Spamhaus's 127.255.255.x
    for queries through a public or an over-quota resolver, DBL's 127.0.1.255 for an IP), if any:
    not a listing, and not "not listed" either: the list is in effect off for this gateway.
    With ``zone`` (a URI list's: the uribl layer passes it), 127.0.0.1 is one too unless the
    zone's ``codes`` name it: URIBL.com and SURBL answer it when they refuse a resolver
    (SpamAssassin's URIBL_BLOCKED), and RFC 5782 section 5 keeps it out of every list. The
    dnsbl layer passes no zone: there it stays "not listed"."""
    for answer in answers:
        try:
            a = ipaddress.IPv4Address(answer)
        except ValueError:
            continue
        if a in _REFUSED or a == _DBL_NO_IP:
            return answer
        if zone is not None and a == _NEVER_LISTED and not zone.names(int(a)):
            return answer
    return None


_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_REFUSED = ipaddress.IPv4Network("127.255.255.0/24")  # Spamhaus's error answers
_BROADCAST = ipaddress.IPv4Address("127.0.0.255")
_DBL_NO_IP = ipaddress.IPv4Address("127.0.1.255")  # Spamhaus DBL: "IP queries prohibited", no listing
_NEVER_LISTED = ipaddress.IPv4Address("127.0.0.1")  # RFC 5782 section 5; URIBL.com: query refused



def parse_zones(raw: tuple[dict[str, Any], ...], path: str, prefix: str) -> tuple[Zone, ...]:
    if len(raw) > MAX_ZONES:  # each zone is one more query per message (per link for URIBL)
        raise SettingsError(path, f"at most {MAX_ZONES} zones")
    out = []
    actions: dict[str, tuple[int, str]] = {}  # symbol -> (first entry, its action)
    for i, z in enumerate(raw):
        p = f"{path}[{i}]"
        unknown = set(z) - {"zone", "symbol", "weight", "action", "codes", "mask", "kind"}
        if unknown:
            raise SettingsError(f"{p}.{sorted(unknown)[0]}", "unknown field")
        name = str(z.get("zone", "")).lower().rstrip(".")
        if not _ZONE.match(name):
            raise SettingsError(f"{p}.zone", f"{name!r} is not a DNS zone")
        symbol = str(z.get("symbol") or prefix + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_"))
        if not _SYMBOL.match(symbol):
            raise SettingsError(f"{p}.symbol", f"{symbol!r} must be upper-case letters, digits and _")
        try:
            if isinstance(z.get("weight"), bool):  # (float(True) is 1.0: "weight: true" read as 1)
                raise TypeError
            weight = float(z.get("weight", 1.0))
        except (TypeError, ValueError):
            raise SettingsError(f"{p}.weight", "must be a number") from None
        if not math.isfinite(weight):  # NaN made every total NaN (no threshold ever met, the
            # X-Spam-* headers failed: tempfailed on every retry); inf rejected all it listed
            raise SettingsError(f"{p}.weight", "must be a finite number")
        action = str(z.get("action", "score"))
        if action not in ACTIONS:
            raise SettingsError(f"{p}.action", f"must be one of {', '.join(ACTIONS)}")
        if weight < 0 and action != "score":  # an allowlist that refused or quarantined its own hosts
            raise SettingsError(f"{p}.action", f"a zone with a negative weight (an allowlist such as "
                                f"list.dnswl.org) must have action score, not {action}")
        codes = []
        raw_codes = z.get("codes") or []
        if not isinstance(raw_codes, (list, tuple)):
            raise SettingsError(f"{p}.codes", "must be a list of addresses or ranges (e.g. [\"127.0.0.2-127.0.0.11\"])")
        for j, c in enumerate(raw_codes):
            lo_s, _, hi_s = str(c).partition("-")
            try:
                lo = int(ipaddress.IPv4Address(lo_s.strip()))
                hi = int(ipaddress.IPv4Address(hi_s.strip())) if hi_s else lo
            except ValueError:
                raise SettingsError(f"{p}.codes[{j}]", f"{c!r} is not an address or range") from None
            if lo > hi:  # would match no answer: the zone would silently never list
                raise SettingsError(f"{p}.codes[{j}]", f"{c!r}: a range goes from the lower address to the higher")
            if not any(Zone("", "", 0.0, "score", ((lo, hi),), 0, "any").accepts(str(ipaddress.IPv4Address(n)))
                       for n in _probe(lo, hi)):
                # answers outside 127.0.0.0/8 and the lists' error answers never count
                raise SettingsError(f"{p}.codes[{j}]", f"{c!r} holds no answer that can list: listings are in "
                                    "127.0.0.0/8, and 127.0.0.255, 127.0.1.255 and 127.255.255.x are the lists' "
                                    "error answers")
            codes.append((lo, hi))
        mask_v = z.get("mask", 0)
        try:
            mask = int(mask_v, 0) if isinstance(mask_v, str) else int(mask_v)
        except (TypeError, ValueError):
            raise SettingsError(f"{p}.mask", "must be an integer (e.g. 0x04)") from None
        if not 0 <= mask <= 0xFFFFFFFF:  # matched against an IPv4 answer: 32 bits
            raise SettingsError(f"{p}.mask", "must be 0..0xffffffff (a 32-bit mask of the answer address)")
        if mask and codes and not any(_has_bit(lo, hi, mask) for lo, hi in codes):
            # (accepts needs both: the zone would silently never list)
            raise SettingsError(f"{p}.mask", f"{mask:#x} shares no bit with any answer of codes: the zone would "
                                "never list; drop the mask or the codes, or make them agree")
        kind = str(z.get("kind", "any"))
        if kind not in ("any", "domain", "ip"):
            raise SettingsError(f"{p}.kind", "must be any, domain or ip")
        first, first_action = actions.setdefault(symbol, (i, action))
        if first_action != action:  # the system rule is keyed on the symbol: it would act on both
            raise SettingsError(f"{p}.symbol", f"{symbol} is also the symbol of {path}[{first}], whose action is "
                                f"{first_action}, not {action}: its rule would act on this entry's answers too; "
                                "give this entry its own symbol")
        out.append(Zone(name, symbol, weight, action, tuple(codes), mask, kind))
    return tuple(out)


def _has_bit(lo: int, hi: int, mask: int) -> bool:
    """Whether some address of lo..hi has a bit of ``mask``: per bit, the least address from lo
    up that has it."""
    for b in range(32):
        bit = 1 << b
        if mask & bit and (lo & bit or ((lo | bit) & ~(bit - 1)) <= hi):
            return True
    return False


def _probe(lo: int, hi: int) -> list[int]:
    """Addresses of a range enough to tell whether any in it can count as a listing: its ends,
    and the ends of its part inside 127.0.0.0/8 next to each error answer."""
    a, b = max(lo, int(_LOOPBACK.network_address)), min(hi, int(_LOOPBACK.broadcast_address))
    if a > b:
        return [lo]
    near = {a, b}
    for x in (int(_BROADCAST), int(_DBL_NO_IP), int(_REFUSED.network_address)):
        near |= {x - 1, x + 1}
    return sorted(n for n in near if a <= n <= b)


def reversed_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``192.0.2.1`` -> ``1.2.0.192``; IPv6 -> 32 reversed nibbles (RFC 5782 section 2.4)."""
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(f"{int(ip):032x}"))  # (exploded would keep a scope id)
