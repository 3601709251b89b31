"""Spam-trap addresses: addresses that no person uses, so everything sent to them is spam.

A message to a trap is discarded (or quarantined), learned by Bayes as spam (not in scan
mode) and the client address is marked in the shared store for ``ip_ttl``; later messages
from that address carry ``SPAMTRAP_IP`` with ``ip_score``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.store import default_store
from gateway_milter.verdict import FailMode, Outcome, QuarantineQueue, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient

log = logging.getLogger("bulwark.spamtrap")


@dataclass(frozen=True, slots=True)
class SpamTrapSettings(BaseSettings):
    addresses: tuple[str, ...] = ()  # full addresses, or "local@" for that local part in every domain
    action: str = "discard"  # discard | quarantine | score
    trap_score: float = 100.0
    train_bayes: bool = True
    mark_ip: bool = True
    ip_ttl: int = 7 * 86400
    ip_score: float = 3.0

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.action not in ("discard", "quarantine", "score"):
            raise SettingsError("action", "must be discard, quarantine or score")
        for i, a in enumerate(self.addresses):
            if "@" not in a:
                raise SettingsError(f"addresses[{i}]", f"{a!r} is not an address or local@")


def is_trap(address: str, settings: SpamTrapSettings) -> bool:
    a = address.strip().strip("<>").lower()
    local = a.partition("@")[0] + "@"
    return any(t.lower() == a or (t.endswith("@") and t.lower() == local) for t in settings.addresses)


class SpamTrapLayer(Layer[SpamTrapSettings]):
    id = "spamtrap"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = SpamTrapSettings
    description = "Spam-trap addresses: discard, learn as spam, mark the sending IP"

    def check_recipient(self, ctx: MessageContext, rcpt: Recipient, settings: SpamTrapSettings) -> LayerFindings:
        if is_trap(rcpt.address, settings):
            return LayerFindings({"trap": rcpt.address}, (self.symbol("SPAMTRAP_RECIPIENT", 0.0, rcpt.address),))
        return LayerFindings()

    def check(self, ctx: MessageContext, settings: SpamTrapSettings) -> LayerFindings:
        traps = [r.address for r in ctx.recipients if is_trap(r.address, settings)]
        ip = ctx.conn.client_ip or ""
        store = default_store()
        symbols = []
        facts: dict[str, object] = {"traps": traps}
        if ip and settings.mark_ip:
            n = store.get(f"trap:ip:{ip}")
            if n is not None:
                symbols.append(self.symbol("SPAMTRAP_IP", settings.ip_score, f"{ip} hit a spam trap recently"))
        if traps:
            symbols.append(self.symbol("SPAMTRAP", settings.trap_score, ", ".join(traps)))
            if not ctx.scan_mode:
                if settings.mark_ip and ip:
                    store.incr(f"trap:ip:{ip}", 1, ttl=settings.ip_ttl)
                if settings.train_bayes:
                    facts["learned"] = self._learn(ctx)
        return LayerFindings(facts, tuple(symbols))

    @staticmethod
    def _learn(ctx: MessageContext) -> bool:
        from gateway_milter import layers

        if "bayes" not in layers.available():
            return False
        from gateway_milter.antispam.bayes import learn_item
        from gateway_milter.antispam.learner import learner
        from gateway_milter.antispam.saview import message_view
        from gateway_milter.store import default_store

        try:  # learned in the background, as autolearn is (antispam/learner.py): True once queued
            return learner().submit(default_store(), learn_item(message_view(ctx), True, ["global"]))
        except Exception:
            log.warning("spam trap: bayes learning failed", exc_info=True)
            return False

    def policy_rules(self, settings: SpamTrapSettings) -> list[PolicyRule]:
        if settings.action == "discard":
            return [PolicyRule("spamtrap", Outcome.discard("sent to a spam trap"), ("SPAMTRAP",))]
        if settings.action == "quarantine":
            return [PolicyRule("spamtrap", Outcome.quarantine(QuarantineQueue.ADMIN, "sent to a spam trap"), ("SPAMTRAP",))]
        return []
