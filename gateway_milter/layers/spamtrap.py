"""Spam-trap addresses: addresses that no person uses, so everything sent to them is spam.

A message to a trap is discarded (or quarantined), learned by Bayes as spam (not in scan
mode; in global for a trap of the global settings, in the domain's scope for a trap only a
domain's settings list) and the
client address is marked in the shared store for ``ip_ttl``; later messages
from that address carry ``SPAMTRAP_IP`` with ``ip_score``. Mail from an internal sender
(trusted network, authenticated), a bounce (null sender) or an auto-reply (``Auto-Submitted``)
is neither learned nor marks its client.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from gateway_milter.context import untag
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.policy.lists import normal_address
from gateway_milter.store import StateStore, StoreError, default_store
from gateway_milter.verdict import FailMode, Outcome, QuarantineQueue, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient
    from gateway_milter.policy.snapshot import PolicySnapshot

log = logging.getLogger("bulwark.spamtrap")


@dataclass(frozen=True, slots=True)
class SpamTrapSettings(BaseSettings):
    addresses: tuple[str, ...] = ()  # full addresses, or "local@" for that local part in every domain
    action: str = "discard"  # discard | quarantine | score
    trap_score: float = 100.0
    train_bayes: bool = True
    mark_ip: bool = True
    ip_ttl: int = field(default=7 * 86400, metadata={"unit": "s"})
    ip_score: float = 3.0
    # characters that start an address extension: trap+anything@ is delivered to trap@ (as
    # Postfix's recipient_delimiter delivers it), so it is the trap too; empty: none
    recipient_delimiter: str = "+"

    # What a trap hit does to every domain: learned as spam into the global Bayes model, the
    # client address marked for all (SPAMTRAP_IP). A domain's own trap list would let its
    # administrator mark any sender (say, a big provider's outbound relays) for everyone.
    global_only_fields: ClassVar[frozenset[str]] = frozenset({"addresses", "train_bayes", "mark_ip", "ip_ttl"})

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.action not in ("discard", "quarantine", "score"):
            raise SettingsError("action", "must be discard, quarantine or score")
        for i, a in enumerate(self.addresses):
            local, at, domain = a.rpartition("@")
            if not at or not _LOCAL.fullmatch(local) or (domain and not _DOMAIN.fullmatch(domain)):
                raise SettingsError(f"addresses[{i}]", f"{a!r} is not an address (local@domain) or local@")
        if not 60 <= self.ip_ttl <= MAX_IP_TTL:
            raise SettingsError("ip_ttl", f"must be 60..{MAX_IP_TTL} seconds")
        from gateway_milter.layers.bayes import check_recipient_delimiter

        check_recipient_delimiter(self.recipient_delimiter)


MAX_IP_TTL = 365 * 86400
_LOCAL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}")
_DOMAIN = re.compile(r"[^\s@.\x00-\x1f\x7f]{1,63}(\.[^\s@.\x00-\x1f\x7f]{1,63})*\.?")


# an address as recipients arrive (lower case, the domain without a trailing dot and in A-labels;
# ``local@`` stays ``local@``), kept for the few trap addresses asked of every message
_norm = functools.lru_cache(maxsize=1024)(normal_address)


def is_trap(address: str, settings: SpamTrapSettings, policy: PolicySnapshot | None = None) -> bool:
    """Whether ``address`` is one of the trap addresses: as written, a ``local@`` entry in
    every domain, and with ``policy`` an address of an alias domain as the same address of the
    domain it is an alias of (both ways: the mailbox is the same), under a BATV tag
    (``prvs=TAG=trap@``, which anyone can write, is delivered to the trap) and with an address
    extension (``trap+x@``, cut at ``recipient_delimiter`` as the MTA delivers it)."""
    from gateway_milter.layers.bayes import user_address

    a = _norm(untag(address))
    forms = dict.fromkeys((a, user_address(a, settings.recipient_delimiter)))
    for f in forms:
        local = f.rpartition("@")[0] + "@"
        mine = _canonical(f, policy)
        if any(t == local if t.endswith("@") else _canonical(t, policy) == mine for t in map(_norm, settings.addresses)):
            return True
    return False


def _canonical(address: str, policy: PolicySnapshot | None) -> str:
    """A normalised address in its domain's own name (an alias domain's as its main domain's)."""
    lp, _, dom = address.rpartition("@")
    canon = policy.canonical_domain(dom) if policy is not None else None
    return f"{lp}@{canon.lower()}" if canon else address


def learning_scopes(ctx: MessageContext, traps: list[str]) -> list[str]:
    """The Bayes scopes trap mail is learned in. A trap of the global settings (which learn)
    teaches ``global``; a trap only a domain's settings list teaches that domain's scope, when
    its Bayes settings read one (per_domain), and never the scope every tenant reads."""
    glob = ctx.policy.settings_for("spamtrap", None)
    out: list[str] = []
    for t in traps:
        if is_trap(t, glob, ctx.policy):
            continue
        dom = ctx.policy.canonical_domain(t.rpartition("@")[2])
        if dom and ctx.policy.settings_for("bayes", dom).per_domain and "dom:" + dom not in out:
            out.append("dom:" + dom)
    if glob.train_bayes and any(is_trap(t, glob, ctx.policy) for t in traps):
        out.append("global")
    return out


class SpamTrapLayer(Layer[SpamTrapSettings]):
    id = "spamtrap"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = SpamTrapSettings
    title = "Spam traps"
    description = "Spam-trap addresses: discard, learn as spam, mark the sending IP"

    def check_recipient(self, ctx: MessageContext, rcpt: Recipient, settings: SpamTrapSettings) -> LayerFindings:
        if rcpt.is_local and is_trap(rcpt.address, settings, ctx.policy):
            return LayerFindings({"trap": rcpt.address}, (self.symbol("SPAMTRAP_RECIPIENT", 0.0, rcpt.address),))
        return LayerFindings()

    def check(self, ctx: MessageContext, settings: SpamTrapSettings) -> LayerFindings:
        traps = [r.address for r in ctx.recipients if r.is_local and is_trap(r.address, settings, ctx.policy)]
        ip = str(ctx.conn.ip) if ctx.conn.ip else ""  # IPv4-mapped IPv6 as IPv4: one mark per client
        symbols = []
        facts: dict[str, object] = {"traps": traps}
        # an internal sender (trusted network, authenticated) is no outside spammer: writing to a
        # trap (a departed colleague's address) neither marks its server nor teaches Bayes
        internal = ctx.is_internal_sender
        # nor is a bounce or an auto-reply (RFC 3834 Auto-Submitted): trap addresses are forged
        # as senders, and such mail comes from the server of whoever the spam named (marking a
        # large provider's relay for everyone, teaching Bayes delivery reports as spam)
        auto = (ctx.header("Auto-Submitted") or "no").split(";")[0].strip().lower() != "no"
        why_not = "internal sender" if internal else "bounce" if not ctx.mail_from else "auto-reply" if auto else ""
        if why_not and traps:
            facts["not_learned"] = why_not
        # spotting a trap recipient needs no store: a store that fails only loses the IP mark
        # (read or write), never SPAMTRAP itself; nor does one that cannot even be opened
        store: StateStore | None = None
        if ip and settings.mark_ip and not internal:
            try:
                store = default_store()
                n = store.get(f"trap:ip:{ip}")
            except (StoreError, OSError) as e:
                n = None
                facts["store_error"] = str(e)
            if n is not None:
                symbols.append(self.symbol("SPAMTRAP_IP", settings.ip_score, f"{ip} hit a spam trap recently"))
        if traps:
            symbols.append(self.symbol("SPAMTRAP", settings.trap_score, ", ".join(traps)))
            if len(traps) == len(ctx.recipients):
                # nobody else's mail: discarding it loses nothing (with a real recipient beside
                # the trap, the message is quarantined instead: see policy_rules)
                symbols.append(self.symbol("SPAMTRAP_ONLY", 0.0, ", ".join(traps)))
            if not ctx.scan_mode and not why_not:
                if settings.mark_ip and ip and store is not None:
                    try:
                        store.incr(f"trap:ip:{ip}", 1, ttl=settings.ip_ttl)
                        # marked for ip_ttl after its latest hit (incr's ttl applies to a new
                        # key only: a client hitting traps every day lost its mark ip_ttl after
                        # the first)
                        store.expire([f"trap:ip:{ip}"], settings.ip_ttl)
                    except StoreError as e:
                        facts["store_error"] = str(e)
                        log.warning("spam trap: the client's mark was not stored: %s", e)
                if settings.train_bayes:
                    facts["learned"] = self._learn(ctx, learning_scopes(ctx, traps))
        if "store_error" in facts:  # (facts stay out of the message log: the trace says it)
            ctx.add_trace(self.id, "error",
                          f"state store: {facts['store_error']} (the client's spam-trap mark not read or not stored)")
        return LayerFindings(facts, tuple(symbols))

    @staticmethod
    def _learn(ctx: MessageContext, scopes: list[str]) -> bool:
        from gateway_milter import layers

        if not scopes or "bayes" not in layers.available():
            return False
        from gateway_milter.antispam.bayes import learn_item
        from gateway_milter.antispam.learner import learner
        from gateway_milter.antispam.saview import message_view
        from gateway_milter.store import default_store

        try:  # learned in the background, as autolearn is (antispam/learner.py): True once queued
            return learner().submit(default_store(), learn_item(message_view(ctx), True, scopes))
        except Exception:
            log.warning("spam trap: bayes learning failed", exc_info=True)
            return False

    def policy_rules(self, settings: SpamTrapSettings) -> list[PolicyRule]:
        if settings.action == "discard":
            # only a message to traps alone is discarded; one also addressed to real recipients is
            # held in the admin quarantine, so that their copy is never silently dropped
            return [PolicyRule("spamtrap", Outcome.discard("sent to a spam trap"), ("SPAMTRAP_ONLY",)),
                    PolicyRule("spamtrap", Outcome.quarantine(QuarantineQueue.ADMIN,
                                                              "sent to a spam trap and other recipients"), ("SPAMTRAP",))]
        if settings.action == "quarantine":
            return [PolicyRule("spamtrap", Outcome.quarantine(QuarantineQueue.ADMIN, "sent to a spam trap"), ("SPAMTRAP",))]
        return []
