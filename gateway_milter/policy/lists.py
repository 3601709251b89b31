"""Allow and block lists: sender and recipient address patterns (``*`` and ``?`` wildcards),
client host name patterns, and IP networks (CIDR, IPv4 and IPv6), global or per domain."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass, replace

from gateway_milter.context import untag  # (the BATV untagging the lists compare senders with)
from gateway_milter.layers.base import SettingsError

LIST_NAMES = ("allow", "block")
KINDS = ("sender", "recipient", "host", "ip")
_ADDR_CHARS = re.compile(r"^[^\s<>()\[\],;:\"\\]+$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ListEntry:
    list: str
    kind: str
    value: str
    domain: str | None = None
    comment: str = ""
    recipient: str | None = None  # a user's own entry: applies to mail for this address only

    def as_dict(self) -> dict[str, str | None]:
        d = {"list": self.list, "kind": self.kind, "value": self.value, "domain": self.domain, "comment": self.comment}
        if self.recipient:
            d["recipient"] = self.recipient
        return d


MAX_VALUE = 320  # characters of an entry's value (the web admin's database column)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_COMMENT = 200


def validate_entry(raw: object, path: str) -> ListEntry:
    if not isinstance(raw, dict):
        raise SettingsError(path, "must be a mapping with list, kind and value")
    unknown = set(raw) - {"list", "kind", "value", "domain", "comment", "recipient"}
    if unknown:
        raise SettingsError(f"{path}.{sorted(unknown)[0]}", "unknown field")
    lst, kind, value = raw.get("list"), raw.get("kind"), raw.get("value")
    if lst not in LIST_NAMES:
        raise SettingsError(f"{path}.list", f"must be allow or block, not {lst!r}")
    if kind not in KINDS:
        raise SettingsError(f"{path}.kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{path}.value", "must be a non-empty string")
    value = value.strip()
    if len(value) > MAX_VALUE:  # (the database's column; an address is at most 320 characters anyway)
        raise SettingsError(f"{path}.value", f"at most {MAX_VALUE} characters")
    if _CONTROL.search(value):  # (a NUL: PostgreSQL refuses it; no address or host holds one)
        raise SettingsError(f"{path}.value", "must not contain control characters")
    if kind == "ip":
        try:
            value = str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise SettingsError(f"{path}.value", f"{value!r} is not an IP address or CIDR network") from None
    elif kind in ("sender", "recipient"):
        value = value.lower()
        if not _ADDR_CHARS.match(value) or value.count("@") > 1:
            raise SettingsError(f"{path}.value", f"{value!r} is not an address pattern (user@domain, *@domain, domain)")
    else:
        value = value.lower().rstrip(".")
        if not re.match(r"^[a-z0-9*?._-]+$", value):
            raise SettingsError(f"{path}.value", f"{value!r} is not a host name pattern")
    domain = raw.get("domain")
    if domain is not None and (not isinstance(domain, str) or not domain):
        raise SettingsError(f"{path}.domain", "must be a domain name or null")
    comment = raw.get("comment", "") or ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT or _CONTROL.search(comment):
        raise SettingsError(f"{path}.comment", f"must be text of at most {MAX_COMMENT} characters")
    recipient = raw.get("recipient")
    if recipient is not None:
        if (not isinstance(recipient, str) or recipient.count("@") != 1 or not _ADDR_CHARS.match(recipient)
                or len(recipient) > MAX_VALUE):
            raise SettingsError(f"{path}.recipient", f"{recipient!r} is not an address")
        if kind != "sender":
            raise SettingsError(f"{path}.recipient", "a user's own entries are sender entries")
        recipient = recipient.lower()
    return ListEntry(lst, kind, value, domain.lower() if domain else None, comment, recipient)


def _label(label: str) -> str:
    if label.isascii():
        return label
    try:
        return label.encode("idna").decode("ascii")
    except UnicodeError:
        return label


_QUOTED_PAIR = re.compile(r"\\(.)")
_DOT_ATOM = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def normal_address(address: str) -> str:
    """An address (or address pattern) as the lists compare it: lower case, without angle
    brackets, its domain without a trailing dot and in A-labels (``x@Bücher.example.`` is
    ``x@xn--bcher-kva.example``): each form delivers to the same domain."""
    a = address.strip().strip("<>").strip().lower()
    local, at, domain = a.rpartition("@")
    if not at:
        return a
    if len(local) > 1 and local[0] == local[-1] == '"':
        # a quoted local part that needs no quotes is the same mailbox ("closed"@ is closed@:
        # the MTA delivers it so): compared unquoted, else a quote got past a block entry
        inner = _QUOTED_PAIR.sub(r"\1", local[1:-1])
        if _DOT_ATOM.fullmatch(inner):
            local = inner
    domain = domain.rstrip(".")
    if not domain.isascii():
        domain = ".".join(_label(x) for x in domain.split("."))
    return f"{local}@{domain}"




def _forms(address: str) -> tuple[str, ...]:
    """The address as the lists compare it, and without its BATV tag when it has one."""
    a = normal_address(address)
    untagged = untag(a)
    return (a,) if untagged == a else (a, untagged)


def _address_regex(pattern: str) -> re.Pattern[str]:
    """``user@domain`` exact; ``*@domain``/``@domain``/``domain`` any user of the domain;
    ``*.domain`` in the domain part also matches the domain's subdomains."""
    if "@" not in pattern:
        pattern = "*@" + pattern
    elif pattern.startswith("@"):
        pattern = "*" + pattern
    return re.compile(fnmatch.translate(normal_address(pattern)))


class CompiledLists:
    """Lookup structure built once per policy snapshot."""

    def __init__(self, entries: list[ListEntry], aliases: dict[str, str] | None = None) -> None:
        """``aliases`` maps a domain alias to its domain: an entry scoped to either name applies
        to mail for both (looked up under the domain's name)."""
        self.entries = entries
        self._aliases = aliases or {}
        self._addr: dict[tuple[str, str, str | None], list[tuple[re.Pattern[str], ListEntry]]] = {}
        self._hosts: dict[tuple[str, str | None], list[tuple[re.Pattern[str], ListEntry]]] = {}
        self._nets: dict[tuple[str, str | None], list[tuple[IPNetwork, ListEntry]]] = {}
        self._user: dict[tuple[str, str], list[tuple[re.Pattern[str], ListEntry]]] = {}
        for e in entries:
            if e.domain in self._aliases:
                e = replace(e, domain=self._aliases[e.domain])
            if e.recipient:
                self._user.setdefault((e.list, normal_address(e.recipient)), []).append((_address_regex(e.value), e))
            elif e.kind in ("sender", "recipient"):
                self._addr.setdefault((e.list, e.kind, e.domain), []).append((_address_regex(e.value), e))
            elif e.kind == "host":
                self._hosts.setdefault((e.list, e.domain), []).append((re.compile(fnmatch.translate(e.value)), e))
            else:
                self._nets.setdefault((e.list, e.domain), []).append((ipaddress.ip_network(e.value), e))

        self.has_sender_entries = any(kind == "sender" for (_, kind, _) in self._addr)

    def _scopes(self, domain: str | None) -> tuple[str | None, ...]:
        if not domain:
            return (None,)
        d = domain.lower().rstrip(".")
        return (self._aliases.get(d, d), None)

    def match_address(self, lst: str, kind: str, address: str, domain: str | None) -> ListEntry | None:
        forms = _forms(address) if kind == "sender" else (normal_address(address),)
        if not forms[0]:
            return None
        for scope in self._scopes(domain):
            for rx, e in self._addr.get((lst, kind, scope), ()):
                if any(rx.match(a) for a in forms):
                    return e
        return None

    def match_host(self, lst: str, host: str, domain: str | None) -> ListEntry | None:
        h = host.lower().rstrip(".")
        if not h or h == "unknown":
            return None
        for scope in self._scopes(domain):
            for rx, e in self._hosts.get((lst, scope), ()):
                if rx.match(h):
                    return e
        return None

    def match_ip(self, lst: str, ip: IPAddress | None, domain: str | None) -> ListEntry | None:
        if ip is None:
            return None
        for scope in self._scopes(domain):
            for net, e in self._nets.get((lst, scope), ()):
                if ip.version == net.version and ip in net:
                    return e
        return None

    def match_user(self, lst: str, recipient: str, sender: str) -> ListEntry | None:
        """A recipient's own entry matching the sender (users manage these in My Account)."""
        forms = _forms(sender)
        if not forms[0] or not self._user:
            return None
        for rx, e in self._user.get((lst, normal_address(recipient)), ()):
            if any(rx.match(a) for a in forms):
                return e
        return None
