"""Greylisting (Harris 2003; RFC 6647 describes the practice): the first delivery attempt of
an unknown triplet (client network, envelope sender, recipient) is answered 451 4.7.1; a retry
after ``delay`` and within ``retry_window`` passes and the triplet is remembered until it has
not been seen for ``expiry`` (every delivery restarts the expiry). A client network with
``auto_pass_after`` passed triplets, counted at most once an hour, is pass-listed as a whole
(clients that retry properly are not delayed again), also until it has been silent for ``expiry``.

State lives in the shared state store (Redis or the embedded SQLite store), so every milter
process and node agrees. Judged per recipient at RCPT; skipped in scan mode unless
``in_scan_mode`` or the context asks for it (``manage.py scan --greylist``), and then it
only reads the state: a scan answers what the gateway would answer, and records nothing.
A store failure means "unknown" (no greylisting), never a refusal.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from gateway_milter.context import untag
from gateway_milter.layers.base import BaseSettings, check_reply, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.net.networks import client_network
from gateway_milter.policy.lists import normal_address
from gateway_milter.store import StateStore, default_store
from gateway_milter.verdict import FailMode, Outcome, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient


# Providers that retry from a pool of networks (a retry rarely comes from the first attempt's /24,
# so greylisting would hold their mail for hours): Gmail and Google Workspace, Microsoft 365 and
# Outlook.com, Yahoo and AOL, Amazon SES. As Postgrey's whitelist_clients, kept short.
DEFAULT_EXEMPT_CLIENT_NAMES: tuple[str, ...] = ("google.com", "outbound.protection.outlook.com", "yahoo.com",
                                                "amazonses.com")
_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")


def client_name_entry(entry: str) -> str:
    """An ``exempt_client_names`` entry as matched: lower case, without a leading ``*.`` or
    ``.`` and a trailing dot."""
    e = entry.strip().lower().rstrip(".")
    return e[2:] if e.startswith("*.") else e.lstrip(".")


def client_name_matches(name: str, entries: tuple[str, ...]) -> bool:
    n = name.strip().lower().rstrip(".")
    if not n or n == "unknown" or "." not in n:
        return False
    for entry in entries:
        e = client_name_entry(entry)
        if n == e or n.endswith("." + e):
            return True
    return False


@dataclass(frozen=True, slots=True)
class GreylistSettings(BaseSettings):
    # Off until an administrator turns it on: it delays all first-time mail by design.
    mode: str = "off"
    # (``unit``: the web admin shows a number of seconds as a duration too)
    delay: int = field(default=300, metadata={"unit": "s"})  # seconds before a retry is accepted
    # a retry must come within this time of the first attempt
    retry_window: int = field(default=4 * 3600, metadata={"unit": "s"})
    # a passed triplet (and an auto-pass network) is forgotten after this long unseen
    expiry: int = field(default=36 * 86400, metadata={"unit": "s"})
    netmask_v4: int = 24
    netmask_v6: int = 64
    auto_pass_after: int = 5  # passed triplets (at most one an hour) after which the whole client network passes (0: never)
    exempt_authenticated: bool = True
    exempt_trusted_networks: bool = True
    exempt_allowlisted: bool = True
    exempt_spf_pass: bool = False  # skip when the sender domain's SPF passes
    exempt_senders: tuple[str, ...] = ()  # addresses or @domain
    exempt_recipients: tuple[str, ...] = ()
    exempt_networks: tuple[str, ...] = ()
    # verified reverse names (the MTA's client_name: forward-confirmed, "unknown" otherwise) of
    # big senders whose retries come from another network than the first attempt; a name
    # matches itself and the names under it
    exempt_client_names: tuple[str, ...] = DEFAULT_EXEMPT_CLIENT_NAMES
    in_scan_mode: bool = False  # judge (read-only) in scan mode too
    reply_text: str = "Greylisted: please try again in a few minutes"

    # The client network's pass counter (grey:n:NETWORK) is shared by every domain and each
    # pass restarts it with the domain's expiry: one domain's long expiry would keep a network
    # auto-passed for all.
    global_only_fields: ClassVar[frozenset[str]] = frozenset({"expiry"})

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.delay < 0:
            raise SettingsError("delay", "must be 0 or more seconds")
        if self.retry_window <= self.delay:
            raise SettingsError("retry_window", f"must be longer than the delay ({self.delay} seconds)")
        if self.expiry <= 0:
            raise SettingsError("expiry", "must be 1 second or more")
        if self.expiry > MAX_EXPIRY:
            raise SettingsError("expiry", f"must be at most {MAX_EXPIRY} seconds (365 days)")
        if self.retry_window > MAX_EXPIRY:  # (a key's TTL: Redis refused 10**16, and greylisting stopped)
            raise SettingsError("retry_window", f"must be at most {MAX_EXPIRY} seconds (365 days)")
        if not 0 <= self.auto_pass_after <= 1000:
            raise SettingsError("auto_pass_after", "must be 0..1000 (0: never)")
        if not 8 <= self.netmask_v4 <= 32:
            raise SettingsError("netmask_v4", "must be 8..32")
        if not 16 <= self.netmask_v6 <= 128:
            raise SettingsError("netmask_v6", "must be 16..128")
        for i, n in enumerate(self.exempt_networks):
            try:
                net = ipaddress.ip_network(n, strict=False)
            except ValueError:
                raise SettingsError(f"exempt_networks[{i}]", f"{n!r} is not an IP network") from None
            if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
                # clients of such addresses are judged by their IPv4 address: it never matched
                raise SettingsError(f"exempt_networks[{i}]", f"{n!r} is an IPv4-mapped network: write it "
                                    "as an IPv4 network (::ffff:192.0.2.0/120 is 192.0.2.0/24)")
        for field_name in ("exempt_senders", "exempt_recipients"):
            for i, e in enumerate(getattr(self, field_name)):
                if not _EXEMPT_ENTRY.match(e.strip()):
                    raise SettingsError(f"{field_name}[{i}]", f"{e!r} is not an address or @domain "
                                        "(user@example.com, @example.com)")
        for i, n in enumerate(self.exempt_client_names):
            if not _NAME.match(client_name_entry(n)):
                raise SettingsError(f"exempt_client_names[{i}]", f"{n!r} is not a host or domain name of two "
                                    "labels or more (e.g. google.com or *.mail.example.net)")
        check_reply("451", "4.7.1", self.reply_text, ("reply_text", "reply_text", "reply_text"))


MAX_EXPIRY = 365 * 86400
# an exemption entry: an address (a local part, @, a domain) or @domain; not a bare domain, which
# never matched an address, nor an empty entry, which matched the null sender's every bounce
_EXEMPT_ENTRY = re.compile(r"[^@\s]*@[^@\s.]+(\.[^@\s.]+)*\.?")


# SRS (libsrs2, postsrsd): SRS0=HASH=TT=domain=local@forwarder, SRS1=HASH=first==HASH=TT=...;
# the hash and the day stamp change daily (a forwarded sender would be greylisted every day)
_SRS0 = re.compile(r"^srs0[=+-][^=]+=[^=]+=(.+@.+)$")
_SRS1 = re.compile(r"^srs1[=+-][^=]+=([^=]+)==[^=]+=[^=]+=(.+@.+)$")
_NUMBER = re.compile(r"\b\d+\b")  # a number between separators: VERP's message or bounce ids


def _untag_srs(rest: str) -> str:
    """``domain=local@forwarder`` (an SRS address's original sender) with the BATV tag of the
    original local part removed."""
    domain, eq, local = rest.partition("=")
    return domain + eq + untag(local) if eq else rest


def normalize_sender(sender: str, *, numbers: bool = True) -> str:
    """The sender as the triplet keeps it: lower-cased; BATV tags removed (they change with
    every message); SRS hashes and day stamps removed (they change daily); an address extension
    cut (``list+bounce-x7Gq@`` as ``list@``) and numbers standing alone in the local part as
    ``#`` (VERP ids such as ``bounce-4711-17@``), as Postgrey does, not with ``numbers`` off;
    ``<>`` stays empty."""
    s = untag(sender.strip().strip("<>").lower())
    if s.startswith("srs"):
        # the original sender's own BATV tag goes too (domain=prvs=TAG=local@forwarder): it
        # changes with each message, as the forwarded sender's tag does unforwarded
        if m := _SRS0.match(s):
            s = "srs0=" + _untag_srs(m.group(1))
        elif m := _SRS1.match(s):
            s = f"srs1={m.group(1)}=={_untag_srs(m.group(2))}"
    local, at, domain = s.rpartition("@")
    if numbers and at:
        plus = local.find("+", 1)
        if plus > 0:  # an address extension (list+bounce-tag@, VERP by tag), cut as Postgrey cuts it
            local = local[:plus]
        if any(c.isdigit() for c in local):
            local = _NUMBER.sub("#", local)
        s = local + "@" + domain
    return s


@dataclass(frozen=True, slots=True)
class GreyDecision:
    state: str  # "new" | "early" | "passed" | "known" | "network"
    wait: float = 0.0


def decide(store: StateStore, network: str, sender: str, recipient: str, s: GreylistSettings,
           now: float | None = None, *, record: bool = True) -> GreyDecision:
    """The greylisting state machine over the store (pure apart from the store).

    A pass (``known``, ``network`` or a ``passed`` retry) restarts the ``expiry`` of the
    triplet and of its network's counter, at most once a day, as Postgrey and SQLgrey measure
    age from the last delivery: a sender that keeps mailing is never greylisted again; one
    silent for longer than ``expiry`` (less a day at most, less half of it when it is under two
    days) is. With ``record`` off (scan mode)
    nothing is written: the answer is the one the gateway would give now."""
    now = time.time() if now is None else now
    h = hashlib.sha256(f"{network}|{sender}|{recipient.lower()}".encode()).hexdigest()[:32]
    pkey, tkey = f"grey:p:{h}", f"grey:t:{h}"
    nkey = "grey:n:" + network
    seen = [pkey, nkey] if s.auto_pass_after else [pkey]
    # a passed triplet's value is the day it last passed: its expiry restarts at most once a
    # day, not with a write for every message (a write per recipient on the embedded store);
    # an expiry under two days restarts every half expiry instead, so that a sender mailing
    # more often than that is never greylisted again either
    step = min(86400.0, s.expiry / 2)
    today = str(int(now // 86400)) if step == 86400.0 else f"s{int(now // step)}"
    if s.auto_pass_after:
        n = store.get(nkey)
        if n is not None and int(n) >= s.auto_pass_after:
            if record:
                left = store.ttl(nkey)
                if left is None or left < s.expiry - step:
                    store.expire(seen, s.expiry)
            return GreyDecision("network")
    day = store.get(pkey)
    if day is not None:
        if record and day != today:
            store.set(pkey, today, ttl=s.expiry)
            if s.auto_pass_after:
                store.expire([nkey], s.expiry)
        return GreyDecision("known")
    if not record:
        first = store.get(tkey)
        if first is None:
            return GreyDecision("new", float(s.delay))
        waited = now - float(first)
        return GreyDecision("early", s.delay - waited) if waited < s.delay else GreyDecision("passed")
    if store.add(tkey, _stamp(now), ttl=s.retry_window):
        return GreyDecision("new", float(s.delay))
    first = store.get(tkey)
    if first is None:  # expired between the two calls: a new first attempt
        store.set(tkey, _stamp(now), ttl=s.retry_window)
        return GreyDecision("new", float(s.delay))
    waited = now - float(first)
    if waited < s.delay:
        return GreyDecision("early", s.delay - waited)
    store.set(pkey, today, ttl=s.expiry)
    store.delete(tkey)
    if s.auto_pass_after and store.add(NETWORK_STEP_KEY + network, "1", ttl=AUTO_PASS_STEP_S):
        # a network's count goes up at most once an hour, as Postgrey counts (its "one attempt
        # per hour"): one retried message to five recipients passed five triplets at once and
        # pass-listed the whole network for ``expiry``. incr keeps a fixed window (its ttl
        # applies only to a new key): restart it
        store.incr(nkey, 1, ttl=s.expiry)
        store.expire([nkey], s.expiry)
    return GreyDecision("passed")


AUTO_PASS_STEP_S = 3600  # a network's passed triplets count at most once per this time
NETWORK_STEP_KEY = "grey:nl:"  # + network: a triplet of it passed within AUTO_PASS_STEP_S


def _stamp(now: float) -> str:
    """The first attempt's time, to the millisecond below: rounded to the nearest, a retry in
    the same millisecond read a negative wait, "early" even with no delay at all."""
    return f"{int(now * 1000) / 1000:.3f}"


class GreylistLayer(Layer[GreylistSettings]):
    id = "greylist"
    stage = Stage.RCPT
    fail_mode = FailMode.UNKNOWN
    Settings = GreylistSettings
    title = "Greylisting"
    description = "Greylisting of unknown (network, sender, recipient) triplets"

    def store(self) -> StateStore:
        return default_store()

    def exemption(self, ctx: MessageContext, rcpt: Recipient, s: GreylistSettings) -> str | None:
        if ctx.scan_mode and not (s.in_scan_mode or ctx.greylist_in_scan):
            return "scan mode"
        if not rcpt.is_local:
            return "not a local recipient"
        if s.exempt_authenticated and ctx.conn.auth_user:
            return "authenticated"
        ip = ctx.conn.ip
        if s.exempt_trusted_networks and ctx.policy.is_trusted_ip(ip):
            return "trusted network"
        if ip is not None and any(ip.version == n.version and ip in n
                                  for n in (ipaddress.ip_network(x, strict=False) for x in s.exempt_networks)):
            return "exempt network"
        if s.exempt_client_names and client_name_matches(ctx.conn.verified_name, s.exempt_client_names):
            return "exempt client name"
        # the sender as written (untagged) and as the triplet keeps it: an entry names either
        senders = {normalize_sender(ctx.mail_from, numbers=False).rstrip("."), normalize_sender(ctx.mail_from).rstrip(".")}
        for e in s.exempt_senders:
            e = e.strip().lower().rstrip(".")
            if any(x == e or (e.startswith("@") and x.endswith(e)) for x in senders):
                return "exempt sender"
        # the recipient as the lists compare it and in its domain's own name (an alias domain's
        # address matches the entries of the domain it is an alias of)
        # (and without an address extension: postmaster+abuse@ is postmaster@'s mailbox, as
        # Postgrey's recipient lists read it)
        from gateway_milter.layers.bayes import user_address

        written = normal_address(rcpt.plain)
        rdom = written.rpartition("@")[2]
        canonical = ctx.policy.canonical_domain(rdom)
        addrs = set()
        for a in {written, user_address(written)}:
            addrs.add(a)
            if canonical:
                addrs.add(f"{a.rpartition('@')[0]}@{canonical.lower()}")
        for e in s.exempt_recipients:
            e = normal_address(e)
            if any(a == e or (e.startswith("@") and a.endswith(e)) for a in addrs):
                return "exempt recipient"
        from gateway_milter import layers

        if s.exempt_allowlisted:
            from gateway_milter.layers.lists import message_allowlisted, recipient_exemption

            if message_allowlisted(ctx):
                return "allow-listed"
            if "lists" in layers.available() and ctx.policy.settings_for("lists", rcpt.domain).enabled:
                why = recipient_exemption(ctx, rcpt)
                if why:
                    return why
        if "spamtrap" in layers.available():
            from gateway_milter.layers.spamtrap import is_trap

            trap = ctx.policy.settings_for("spamtrap", rcpt.domain)
            if trap.enabled and trap.addresses and is_trap(rcpt.plain, trap, ctx.policy):
                # a trap's mail is what the trap is for: greylisted, the spam that never
                # retries would never reach it, be learned or mark its client
                return "spam trap"
        if s.exempt_spf_pass and "spf" in layers.available() and ctx.layer("spf").fact("result") == "pass":
            return "SPF pass"
        return None

    def check(self, ctx: MessageContext, settings: GreylistSettings) -> LayerFindings:
        return LayerFindings()  # judged per recipient

    def check_recipient(self, ctx: MessageContext, rcpt: Recipient, settings: GreylistSettings) -> LayerFindings:
        why = self.exemption(ctx, rcpt, settings)
        if why:
            return LayerFindings({"greylist": "exempt", "reason": why}, (self.symbol("GREYLIST_EXEMPT", 0.0, why),))
        net = client_network(ctx.conn.ip, settings.netmask_v4, settings.netmask_v6)
        d = decide(self.store(), net, normalize_sender(ctx.mail_from), rcpt.plain, settings,
                   record=not ctx.scan_mode)
        if d.state in ("new", "early"):
            return LayerFindings({"greylist": d.state, "wait_s": round(d.wait)},
                                 (self.symbol("GREYLIST_DEFER", 0.0, f"{d.state}, retry in {d.wait:.0f}s"),))
        return LayerFindings({"greylist": d.state}, (self.symbol("GREYLIST_PASS", 0.0, d.state),))

    def policy_rules(self, settings: GreylistSettings) -> list[PolicyRule]:
        reply = Reply("451", "4.7.1", settings.reply_text)
        return [PolicyRule("greylist", Outcome.tempfail(reply, "greylisted"), ("GREYLIST_DEFER",), recipient=True)]
