"""Who is exempt from sender-authentication checks, and how settings map to policy rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway_milter.layers.base import SettingsError, action_rule
from gateway_milter.verdict import Direction

__all__ = ["ACTIONS", "action_rule", "check_action", "exemption", "score_of"]

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


def score_of(scores: dict[str, float], defaults: dict[str, float], name: str) -> float:
    return float(scores.get(name, defaults.get(name, 0.0)))
