"""Relay control: external senders may only send to local domains (defence in depth behind
Postfix's own ``reject_unauth_destination``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule
from gateway_milter.verdict import Direction, FailMode, Outcome, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient


@dataclass(frozen=True, slots=True)
class RelaySettings(BaseSettings):
    pass


class RelayControlLayer(Layer[RelaySettings]):
    local = True
    id = "relay"
    stage = Stage.RCPT
    fail_mode = FailMode.TEMPFAIL
    Settings = RelaySettings
    title = "Relay control"
    description = "Refuse relaying for external senders to remote recipients"

    def check(self, ctx: MessageContext, settings: RelaySettings) -> LayerFindings:
        return LayerFindings()

    def check_recipient(self, ctx: MessageContext, rcpt: Recipient, settings: RelaySettings) -> LayerFindings:
        if rcpt.direction is Direction.RELAY:
            return LayerFindings({"relay": True}, (self.symbol("RELAY_DENIED", 0.0, rcpt.address),))
        return LayerFindings({"relay": False})

    def policy_rules(self, settings: RelaySettings) -> list[PolicyRule]:
        reply = Reply("554", "5.7.1", "Relay access denied")
        return [PolicyRule("relay_denied", Outcome.reject(reply, "relay denied"), ("RELAY_DENIED",), recipient=True)]
