"""Maximum message size: checked at MAIL FROM against the ESMTP SIZE= declaration (RFC 1870)
and at end of message against the bytes received."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.verdict import FailMode, Outcome, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext


@dataclass(frozen=True, slots=True)
class SizeSettings(BaseSettings):
    max_bytes: int = 50 * 1024 * 1024

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.max_bytes < 1024:
            raise SettingsError("max_bytes", "must be at least 1024")


def declared_size(esmtp: tuple[str, ...]) -> int | None:
    for p in esmtp:
        k, _, v = p.partition("=")
        if k.upper() == "SIZE" and v.isdigit():
            return int(v)
    return None


class MessageSizeLayer(Layer[SizeSettings]):
    local = True
    id = "size"
    stage = Stage.MAIL
    fail_mode = FailMode.TEMPFAIL
    Settings = SizeSettings
    recheck_at_eom = True  # SIZE= at MAIL FROM, the real size at end of message
    title = "Message size"
    description = "Refuse messages over the size limit"

    def check(self, ctx: MessageContext, settings: SizeSettings) -> LayerFindings:
        declared = declared_size(ctx.mail_esmtp)
        actual = ctx.size if ctx.headers else None
        size = actual if actual is not None else declared
        facts = {"declared": declared, "size": actual, "limit": settings.max_bytes}
        if size is not None and size > settings.max_bytes:
            return LayerFindings(facts, (self.symbol("MESSAGE_TOO_BIG", 0.0, f"{size} > {settings.max_bytes}"),))
        return LayerFindings(facts)

    def policy_rules(self, settings: SizeSettings) -> list[PolicyRule]:
        reply = Reply("552", "5.3.4", f"Message size exceeds the limit of {settings.max_bytes} bytes")
        return [PolicyRule("too_big", Outcome.reject(reply, "message too big"), ("MESSAGE_TOO_BIG",))]
