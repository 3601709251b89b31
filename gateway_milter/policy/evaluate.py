"""Policy evaluation: layer findings -> outcome.

The default engine walks the ordered system rules of the policy (each layer's settings imply
rules such as "BLOCKLIST_SENDER -> refuse"). When the Sieve engine is available it compiles the
same rules, plus the admins' scripts, into the Sieve-ordered policy (docs/policy/sieve.md);
both engines share this interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from gateway_milter import layers
from gateway_milter.layers.base import PolicyRule
from gateway_milter.verdict import Action, Outcome, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient
    from gateway_milter.policy.snapshot import PolicySnapshot

STAGE_ORDER = {s: i for i, s in enumerate(Stage)}


class PolicyEngine(Protocol):
    def envelope(self, ctx: MessageContext, skip: frozenset[str] = frozenset()) -> Outcome | None:
        """Message-level rules whose layers have their input by RCPT time, but those of the
        layers in ``skip`` (the recipient at hand is exempt from them)."""

    def recipient(self, ctx: MessageContext, rcpt: Recipient) -> Outcome | None:
        """Rules judged for one recipient at RCPT."""

    def message(self, ctx: MessageContext) -> Outcome:
        """The final decision at end of message."""


class RulePolicyEngine:
    """Ordered system rules; the first that matches decides."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot

    def _matches(self, ctx: MessageContext, layer_id: str, rule: PolicyRule, rcpt: Recipient | None) -> bool:
        runner = ctx.runner
        assert runner is not None
        res = runner.recipient_result(ctx, layer_id, rcpt) if rcpt is not None else ctx.layer(layer_id)
        if rule.symbols and any(res.has(s) for s in rule.symbols):
            return True
        return rule.min_score is not None and ctx.score >= rule.min_score

    def _walk(self, ctx: MessageContext, upto: Stage, rcpt: Recipient | None,
              skip: frozenset[str] = frozenset()) -> Outcome | None:
        domain = rcpt.domain if rcpt is not None and rcpt.is_local else ctx.policy_domain
        for layer_id, rule in self.snapshot.system_rules(domain):
            if rule.recipient != (rcpt is not None) or layer_id in skip:
                continue
            if STAGE_ORDER[layers.get(layer_id).stage] > STAGE_ORDER[upto]:
                continue
            if self._matches(ctx, layer_id, rule, rcpt):
                o = rule.outcome
                decided = f"system:{layer_id}:{rule.name}"
                ctx.add_trace(decided, "decided", o.action.value + (f" {o.reply}" if o.reply else ""))
                return Outcome(o.action, o.reply, o.queue, o.reason or rule.name, decided,
                               o.header_edits, o.add_recipients, o.body_transforms, o.drop_recipients)
        return None

    def envelope(self, ctx: MessageContext, skip: frozenset[str] = frozenset()) -> Outcome | None:
        o = self._walk(ctx, Stage.RCPT, None, skip)
        # Only refusals are final before DATA; quarantine/discard wait for the message.
        return o if o is not None and o.action in (Action.REJECT, Action.TEMPFAIL) else None

    def recipient(self, ctx: MessageContext, rcpt: Recipient) -> Outcome | None:
        return self._walk(ctx, Stage.RCPT, rcpt)

    def message(self, ctx: MessageContext) -> Outcome:
        return self._walk(ctx, Stage.EOM, None) or Outcome.accept("no rule matched", "system:default")


def engine_for(snapshot: PolicySnapshot) -> PolicyEngine:
    eng = snapshot.compiled.get("engine")
    if eng is None:
        eng = snapshot.compiled["engine"] = _build_engine(snapshot)
    return eng  # type: ignore[no-any-return]


def _build_engine(snapshot: PolicySnapshot) -> PolicyEngine:
    try:
        from gateway_milter.sieve.policy import SievePolicyEngine
    except ImportError:
        return RulePolicyEngine(snapshot)
    return SievePolicyEngine(snapshot)  # type: ignore[no-any-return]
