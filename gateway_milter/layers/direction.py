"""Mail direction, decided once per recipient and message.

- inbound: the sender is external (not authenticated, not from a trusted network) and the
  recipient's domain is local;
- outbound: the sender is internal and the recipient is remote;
- local: internal sender, local recipient;
- relay: external sender, remote recipient (refused by relay control).

A message with recipients of several directions is outbound when any recipient is outbound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings
from gateway_milter.verdict import Direction, FailMode, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext


def recipient_direction(internal_sender: bool, local_recipient: bool) -> Direction:
    if internal_sender:
        return Direction.LOCAL if local_recipient else Direction.OUTBOUND
    return Direction.INBOUND if local_recipient else Direction.RELAY


def message_direction(directions: list[Direction]) -> Direction:
    for d in (Direction.OUTBOUND, Direction.INBOUND, Direction.LOCAL, Direction.RELAY):
        if d in directions:
            return d
    return Direction.INBOUND


class DirectionLayer(Layer[BaseSettings]):
    local = True
    id = "direction"
    stage = Stage.RCPT
    fail_mode = FailMode.TEMPFAIL
    title = "Mail direction"
    description = "Direction facts: inbound, outbound, local"

    def check(self, ctx: MessageContext, settings: BaseSettings) -> LayerFindings:
        d = ctx.direction
        return LayerFindings(
            {"direction": d.value, "authenticated": bool(ctx.conn.auth_user),
             "trusted_network": ctx.policy.is_trusted_ip(ctx.conn.ip)},
            (self.symbol(f"DIRECTION_{d.value.upper()}", 0.0),),
        )
