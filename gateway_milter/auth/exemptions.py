"""Who is exempt from sender-authentication checks, and how settings map to policy rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway_milter.layers.base import PolicyRule, SettingsError
from gateway_milter.verdict import Direction, Outcome, QuarantineQueue, Reply

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

ACTIONS = ("score", "refuse", "quarantine", "tempfail")


def exemption(ctx: MessageContext, *, allowlist: bool = True, authenticated: bool = True,
              trusted: bool = True, outbound: bool = True) -> str | None:
    """The reason a message skips the check, or None. Allow-list entries come from the
    ``lists`` layer's ``allowlisted`` fact."""
    if allowlist and ctx.facts.get("allowlisted"):
        return "allowlisted"
    if authenticated and ctx.conn.auth_user:
        return "authenticated"
    if trusted and ctx.policy.is_trusted_ip(ctx.conn.ip):
        return "trusted_network"
    if outbound and ctx.direction in (Direction.OUTBOUND, Direction.LOCAL):
        return str(ctx.direction.value)
    return None


def check_action(path: str, value: str) -> None:
    if value not in ACTIONS:
        raise SettingsError(path, f"must be one of {', '.join(ACTIONS)}, not {value!r}")


def action_rule(name: str, symbol: str, action: str, reply: Reply, reason: str,
                queue: QuarantineQueue = QuarantineQueue.ADMIN) -> PolicyRule | None:
    """The policy rule for ``action`` when ``symbol`` is present (None for score-only)."""
    if action == "refuse":
        return PolicyRule(name, Outcome.reject(reply, reason), (symbol,))
    if action == "quarantine":
        return PolicyRule(name, Outcome.quarantine(queue, reason), (symbol,))
    if action == "tempfail":
        temp = Reply("451", "4.7.1", reply.text.replace("refused", "deferred"))
        return PolicyRule(name, Outcome.tempfail(temp, reason), (symbol,))
    return None


def score_of(scores: dict[str, float], defaults: dict[str, float], name: str) -> float:
    return float(scores.get(name, defaults.get(name, 0.0)))
