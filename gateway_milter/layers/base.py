"""The layer contract.

A layer MUST:
- declare ``id`` (lower-case, ``[a-z0-9_]+``), ``stage``, ``fail_mode`` and a ``Settings``
  frozen dataclass whose fields all have defaults (the global defaults);
- compute facts and scored symbols in ``check(ctx, settings)`` and never decide an outcome;
- be stateless and thread-safe (one instance serves every connection);
- do all network I/O with timeouts no longer than ``ctx.runner.remaining(...)`` allows.

A layer SHOULD:
- offer ``policy_rules(settings)``: the system policy its settings imply
  ("if BLOCKLIST_SENDER then refuse"), which the policy compiles into its system scripts;
- offer ``check_recipient`` when it judges recipients one by one (RCPT stage);
- start slow lookups early in ``prefetch`` so that they run while SMTP goes on.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from gateway_milter.verdict import FailMode, Outcome, QuarantineQueue, Reply, Stage, Symbol

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient
    from gateway_milter.net.resolver import DnsBudget
    from gateway_milter.pipeline.runner import LayerResult


class SettingsError(ValueError):
    """A settings value is invalid; ``path`` names the field (``lists.block_action``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class BaseSettings:
    """Every layer has a mode: ``on`` (act), ``score`` (symbols only, never refuse), ``off``."""

    mode: str = "on"
    # Fields only a global administrator may set, globally or for a domain: those naming files
    # of the server, bounding hostile input, or shaping state every domain shares (the global
    # Bayes model, the spam-trap IP marks). A domain administrator's override of one would
    # reach the other tenants (webadmin.services.do_set_layer_settings enforces it).
    global_only_fields: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        if self.mode not in ("on", "off", "score"):
            raise SettingsError("mode", f"must be on, off or score, not {self.mode!r}")

    def check_at_save(self) -> list[str]:
        """Checks too slow or too environment-bound for every policy load (the files these
        settings name exist and parse), run when an administrator saves them. Raises
        SettingsError; returns warnings to show."""
        return []

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def acts(self) -> bool:
        return self.mode == "on"


S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One line of a system policy script: when any of ``symbols`` is present (or the score
    reaches ``min_score``), ``outcome`` applies. ``recipient`` rules are judged at RCPT."""

    name: str
    outcome: Outcome
    symbols: tuple[str, ...] = ()
    min_score: float | None = None
    recipient: bool = False


@dataclass(frozen=True, slots=True)
class LayerFindings:
    """What ``check`` returns: facts (plain JSON-able values) and symbols."""

    facts: dict[str, Any] = field(default_factory=dict)
    symbols: tuple[Symbol, ...] = ()


def check_reply(code: str, enhanced: str, text: str,
                fields: tuple[str, str, str] = ("reject_code", "reject_enhanced", "reject_text")) -> None:
    """A reply's settings as :class:`Reply` takes them, an error naming the field that is wrong
    (before, "SMTP reply code must be 4xx or 5xx" was the whole layer's error)."""
    try:
        Reply(code, f"{code[:1] or '5'}.0.0", "x")
    except ValueError as e:
        raise SettingsError(fields[0], str(e)) from None
    try:
        Reply(code, enhanced, "x")
    except ValueError as e:
        raise SettingsError(fields[1], str(e)) from None
    try:
        Reply(code, enhanced, text)
    except ValueError as e:
        raise SettingsError(fields[2], str(e)) from None


def action_rule(name: str, symbol: str, action: str, reply: Reply, reason: str,
                queue: QuarantineQueue = QuarantineQueue.ADMIN, recipient: bool = False) -> PolicyRule | None:
    """The system rule an action setting implies when ``symbol`` is present: ``refuse`` (the
    reply), ``quarantine`` (the queue), ``tempfail`` (4xx with the reply's text), ``score`` or
    anything else: no rule (the symbol only scores). Every layer maps its settings through here."""
    if action == "refuse":
        return PolicyRule(name, Outcome.reject(reply, reason), (symbol,), recipient=recipient)
    if action == "quarantine":
        return PolicyRule(name, Outcome.quarantine(queue, reason), (symbol,), recipient=recipient)
    if action == "tempfail":
        temp = Reply("451", "4.7.1", reply.text.replace("refused", "deferred"))
        return PolicyRule(name, Outcome.tempfail(temp, reason), (symbol,), recipient=recipient)
    return None


class Layer(Generic[S]):
    id: ClassVar[str]
    stage: ClassVar[Stage]
    fail_mode: ClassVar[FailMode] = FailMode.TEMPFAIL
    Settings: ClassVar[type[BaseSettings]] = BaseSettings
    budget_s: ClassVar[float] = 5.0
    title: ClassVar[str] = ""  # what the web admin calls it ("Greylisting"); see ``name``
    description: ClassVar[str] = ""
    # A layer judged before DATA that also looks at headers (e.g. header From lists) is
    # computed again at end of message, replacing its earlier result.
    recheck_at_eom: ClassVar[bool] = False
    # ``prefetch`` works from the client address alone: it is also called at connect (with the
    # global settings, before HELO and MAIL are known), so the lookups run during the dialogue.
    prefetch_at_connect: ClassVar[bool] = False
    # ``prefetch`` needs the message (e.g. the links in the body): it is called only when end of
    # message starts, before any layer's check, so the lookups run while the others compute.
    prefetch_at_eom: ClassVar[bool] = False
    # ``check`` is CPU work on the message and the policy only: no network, no store, nothing
    # that can wait. When every layer a policy turns on is local, end of message runs on the
    # libmilter thread itself instead of the budgeted stage pool (front/milter.py).
    local: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """What the web admin calls the layer: its ``title``, else its id."""
        return self.title or self.id

    def check(self, ctx: MessageContext, settings: S) -> LayerFindings:
        raise NotImplementedError

    def rechecks(self, ctx: MessageContext, result: LayerResult) -> bool:
        """Whether end of message computes the layer again, replacing ``result``."""
        return self.recheck_at_eom

    def check_recipient(
        self, ctx: MessageContext, rcpt: Recipient, settings: S
    ) -> LayerFindings | None:
        return None

    def prefetch(self, ctx: MessageContext, settings: S) -> None:
        """Start slow lookups early (optional)."""

    def policy_rules(self, settings: S) -> list[PolicyRule]:
        return []

    def symbol(self, name: str, score: float = 0.0, detail: str = "") -> Symbol:
        return Symbol(name, score, detail, self.id)

    def dns_budget(self, ctx: MessageContext) -> DnsBudget:
        """The DNS budget of this layer's lookups from now: its stage's, ending at most
        ``budget_s`` from now, so that one layer's silent name servers leave the stage's time to
        the layers after it (an answer not in by then is a temporary error)."""
        from gateway_milter.net.resolver import budget_for, within

        return within(budget_for(ctx), self.budget_s)


# -- strict settings parsing -------------------------------------------------------------------
def settings_from_dict(cls: type[S], data: dict[str, Any] | None, path: str = "") -> S:
    """Build a settings dataclass from a plain dict, strictly: unknown keys and wrong types
    are errors naming the field. Missing keys take the dataclass defaults."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise SettingsError(f"{path}{key}", f"unknown setting (known: {', '.join(sorted(names))})")
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{path}{f.name}")
    try:
        return cls(**kwargs)
    except SettingsError as e:
        raise SettingsError(f"{path}{e.path}", e.message) from None
    except (TypeError, ValueError) as e:
        raise SettingsError(path.rstrip(".") or cls.__name__, str(e)) from None


def settings_to_dict(settings: BaseSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        v = getattr(settings, f.name)
        if isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, enum.Enum):
            v = v.value
        out[f.name] = v
    return out


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, path)
            except SettingsError as e:
                errors.append(e.message)
        raise SettingsError(path, "; ".join(errors))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(path, f"must be a list, not {type(value).__name__}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(path, f"must be a mapping, not {type(value).__name__}")
        kt, vt = typing.get_args(tp)
        return {_coerce(kt, k, path): _coerce(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise SettingsError(path, f"must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SettingsError(path, f"must be a whole number, not {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                f = float(value)
            except OverflowError:  # (an int of hundreds of digits)
                f = math.inf
            if not math.isfinite(f):  # (YAML's .nan and .inf: no JSON column stores them)
                raise SettingsError(path, f"must be a finite number, not {str(value)[:40]}")
            return f
        raise SettingsError(path, f"must be a number, not {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise SettingsError(path, f"must be a string, not {value!r}")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise SettingsError(path, f"must be one of {', '.join(m.value for m in tp)}, not {value!r}") from None
    raise SettingsError(path, f"unsupported setting type {tp!r}")
