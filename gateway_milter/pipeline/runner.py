"""Lazy, memoised layer execution with per-stage time budgets and declared fail modes.

A layer runs only when the policy (or another layer) asks for its result, and at most once per
message. A layer that raises, or is asked for once its stage's time budget is spent, follows
its fail mode (a DNS-asking layer's own ``budget_s`` bounds its DNS waits:
Layer.dns_budget): ``unknown`` gives an
empty result with an error noted in the trace; ``tempfail`` raises :class:`LayerFailure`, which
the milter turns into a 4xx reply. Nothing here ever turns a failure into "clean".
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway_milter import layers
from gateway_milter.layers.base import LayerFindings
from gateway_milter.verdict import FailMode, Stage, Symbol

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient

log = logging.getLogger("bulwark.pipeline")

# Postfix defaults: milter_command_timeout 30 s, milter_content_timeout 300 s (we document
# 60 s in our Postfix template). Each stage answers well inside them.
STAGE_BUDGET_S: dict[Stage, float] = {
    Stage.CONNECT: 10.0,
    Stage.HELO: 10.0,
    Stage.MAIL: 20.0,
    Stage.RCPT: float(os.environ.get("GATEWAY_RCPT_BUDGET", "20")),
    Stage.EOM: float(os.environ.get("GATEWAY_EOM_BUDGET", "45")),
}


# Fault injection for the test tiers and for operators rehearsing failure: the named layers
# raise inside their check (comma-separated ids; ``id:hang`` blocks at end of message instead).
# Unset in production.
_FAULTS = [x.strip() for x in os.environ.get("GATEWAY_FAULT_INJECT", "").split(",") if x.strip()]
FAULT_INJECT = frozenset(x for x in _FAULTS if ":" not in x)
FAULT_HANG = frozenset(x.split(":", 1)[0] for x in _FAULTS if x.endswith(":hang"))


class InjectedFault(RuntimeError):
    pass


class LayerFailure(Exception):
    """A fail-closed layer could not give an answer: the message must be tempfailed."""

    def __init__(self, layer_id: str, error: str) -> None:
        super().__init__(f"layer {layer_id} failed: {error}")
        self.layer_id = layer_id
        self.error = error


class BudgetExceeded(Exception):
    pass


@dataclass(frozen=True, slots=True)
class LayerResult:
    layer_id: str
    facts: dict[str, Any] = field(default_factory=dict)
    symbols: tuple[Symbol, ...] = ()
    error: str | None = None
    skipped: str | None = None  # "disabled", "budget", "exempt"
    ms: float = 0.0

    def fact(self, name: str, default: Any = None) -> Any:
        return self.facts.get(name, default)

    def has(self, symbol: str) -> bool:
        return any(s.name == symbol for s in self.symbols)


class LayerRunner:
    """One per message. ``result(ctx, id)`` runs a layer on demand, memoised."""

    def __init__(self, stage_started: float | None = None) -> None:
        self._results: dict[str, LayerResult] = {}
        self._rcpt_results: dict[tuple[str, str], LayerResult] = {}
        self._running: set[str] = set()
        self.stage = Stage.CONNECT
        self.stage_deadline = (stage_started or time.monotonic()) + STAGE_BUDGET_S[Stage.CONNECT]

    def enter_stage(self, stage: Stage, ctx: MessageContext | None = None) -> None:
        self.stage = stage
        self.stage_deadline = time.monotonic() + STAGE_BUDGET_S[stage]
        if stage is Stage.EOM and ctx is not None:
            for layer_id, res in list(self._results.items()):
                if layers.get(layer_id).rechecks(ctx, res):
                    del self._results[layer_id]
                    gone = set(map(id, res.symbols))
                    ctx.symbols[:] = [s for s in ctx.symbols if id(s) not in gone]

    def remaining(self, cap: float | None = None) -> float:
        left = self.stage_deadline - time.monotonic()
        return max(0.0, min(left, cap) if cap is not None else left)

    def computed(self) -> dict[str, LayerResult]:
        return dict(self._results)

    def peek(self, layer_id: str) -> LayerResult | None:
        """The layer's result if it has run, without running it."""
        return self._results.get(layer_id)

    def result(self, ctx: MessageContext, layer_id: str) -> LayerResult:
        cached = self._results.get(layer_id)
        if cached is not None:
            return cached
        if layer_id in self._running:
            raise RuntimeError(f"layer dependency cycle through {layer_id}")
        self._running.add(layer_id)
        try:
            res = self._run(ctx, layer_id, None)
        finally:
            self._running.discard(layer_id)
        self._results[layer_id] = res
        return res

    def recipient_result(self, ctx: MessageContext, layer_id: str, rcpt: Recipient) -> LayerResult:
        key = (layer_id, rcpt.address.lower())
        cached = self._rcpt_results.get(key)
        if cached is None:
            cached = self._rcpt_results[key] = self._run(ctx, layer_id, rcpt)
        return cached

    def _run(self, ctx: MessageContext, layer_id: str, rcpt: Recipient | None) -> LayerResult:
        layer = layers.get(layer_id)
        domain = rcpt.domain if rcpt is not None and rcpt.is_local else ctx.policy_domain
        settings = ctx.policy.settings_for(layer_id, domain)
        source = layer_id if rcpt is None else f"{layer_id}[{rcpt.address}]"
        if not settings.enabled:
            return LayerResult(layer_id, skipped="disabled")
        if self.remaining() <= 0:
            return self._fail(ctx, layer, source, "stage time budget exhausted", 0.0)
        t0 = time.perf_counter()
        try:
            if layer_id in FAULT_INJECT:
                raise InjectedFault(f"fault injected into layer {layer_id}")
            if layer_id in FAULT_HANG and self.stage is Stage.EOM:
                time.sleep(3600)
            if rcpt is None:
                found = layer.check(ctx, settings)
            else:
                found = layer.check_recipient(ctx, rcpt, settings) or LayerFindings()
        except LayerFailure:
            raise
        except Exception as e:
            ms = (time.perf_counter() - t0) * 1000
            log.exception("layer %s raised", source)
            return self._fail(ctx, layer, source, f"{type(e).__name__}: {e}", ms)
        ms = (time.perf_counter() - t0) * 1000
        symbols = tuple(found.symbols)
        if settings.mode == "score":
            pass  # symbols still count; the policy rules of a score-only layer never act
        ctx.symbols.extend(symbols)
        if rcpt is not None:
            ctx.recipient_symbols.update((id(s), rcpt.plain.lower()) for s in symbols)
        detail = ", ".join(f"{s.name}({s.score:g})" for s in symbols) or "no symbols"
        ctx.add_trace(source, "checked", detail, ms)
        return LayerResult(layer_id, dict(found.facts), symbols, None, None, ms)

    def _fail(self, ctx: MessageContext, layer: Any, source: str, error: str, ms: float) -> LayerResult:
        ctx.add_trace(source, "error", error, ms)
        if layer.fail_mode is FailMode.TEMPFAIL:
            raise LayerFailure(layer.id, error)
        return LayerResult(layer.id, error=error, ms=ms)
