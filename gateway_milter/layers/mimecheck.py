"""MIME structure checks: ambiguity and malformation symbols (RFC 2045, 2046, 2047, 2231).

The MIME view (gateway_milter.mime.view) finds the places where two parsers could read the
message differently; this layer names them as scored symbols (``MIME_AMBIGUOUS_BOUNDARY``,
``MIME_DUPLICATE_CONTENT_TYPE``...) plus the umbrella ``MIME_AMBIGUOUS``. Antivirus scans every
reading regardless; the symbols let the policy refuse or quarantine evasive mail outright.

Fail mode TEMPFAIL: a message we cannot parse is not waved through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway_milter.layers.base import (
    BaseSettings,
    Layer,
    LayerFindings,
    PolicyRule,
    SettingsError,
    action_rule,
)
from gateway_milter.verdict import FailMode, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

# Codes that mean "some parser sees different parts": they raise MIME_AMBIGUOUS.
EVASIVE = frozenset({
    "AMBIGUOUS_BOUNDARY", "DUPLICATE_CONTENT_TYPE", "DUPLICATE_TRANSFER_ENCODING", "RFC2231_BOUNDARY",
    "HIDDEN_PART", "MISSING_BOUNDARY", "CONFLICTING_FILENAMES", "DUPLICATE_DISPOSITION",
    "BAD_MULTIPART_ENCODING", "TOO_DEEP", "TOO_MANY_PARTS", "UNKNOWN_TRANSFER_ENCODING", "UNPARSEABLE",
})
DEFAULT_SCORES: dict[str, float] = {
    "AMBIGUOUS_BOUNDARY": 4.0,
    "DUPLICATE_CONTENT_TYPE": 4.0,
    "DUPLICATE_TRANSFER_ENCODING": 4.0,
    "RFC2231_BOUNDARY": 2.0,
    "HIDDEN_PART": 3.0,
    "MISSING_BOUNDARY": 2.0,
    "CONFLICTING_FILENAMES": 4.0,
    "DUPLICATE_DISPOSITION": 2.0,
    "HEADER_COMMENT": 1.0,
    "UNKNOWN_TRANSFER_ENCODING": 2.0,
    "BAD_BASE64": 1.0,
    "BAD_QUOTED_PRINTABLE": 0.5,
    "MALFORMED_HEADER": 1.0,
    "BAD_MULTIPART_ENCODING": 2.0,
    "TOO_DEEP": 3.0,
    "TOO_MANY_PARTS": 3.0,
    "UNPARSEABLE": 5.0,
}


@dataclass(frozen=True, slots=True)
class MimeCheckSettings(BaseSettings):
    ambiguous_action: str = "none"  # none (score only) | refuse | quarantine (admin)
    ambiguous_score: float = 2.0  # score of the umbrella MIME_AMBIGUOUS symbol
    scores: dict[str, float] = field(default_factory=dict)  # overrides of DEFAULT_SCORES by code

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.ambiguous_action not in ("none", "refuse", "quarantine"):
            raise SettingsError("ambiguous_action", f"must be none, refuse or quarantine, not {self.ambiguous_action!r}")
        for code in self.scores:
            if code not in DEFAULT_SCORES:
                raise SettingsError(f"scores.{code}", f"unknown code (known: {', '.join(sorted(DEFAULT_SCORES))})")

    def __hash__(self) -> int:  # dict field: hash by value for the snapshot caches
        return hash((self.mode, self.ambiguous_action, self.ambiguous_score, tuple(sorted(self.scores.items()))))


class MimeCheckLayer(Layer[MimeCheckSettings]):
    id = "mime"
    stage = Stage.EOM
    fail_mode = FailMode.TEMPFAIL
    Settings = MimeCheckSettings
    title = "MIME checks"
    description = "MIME ambiguity and malformation checks"

    def check(self, ctx: MessageContext, settings: MimeCheckSettings) -> LayerFindings:
        view = ctx.mime
        symbols = []
        codes: list[str] = []
        for a in view.ambiguities:
            if a.code in codes:
                continue
            codes.append(a.code)
            score = settings.scores.get(a.code, DEFAULT_SCORES.get(a.code, 1.0))
            symbols.append(self.symbol(f"MIME_{a.code}", score, f"{a.path}: {a.detail}"[:200]))
        evasive = [c for c in codes if c in EVASIVE]
        if evasive:
            symbols.append(self.symbol("MIME_AMBIGUOUS", settings.ambiguous_score, ", ".join(evasive)))
        facts = {
            "parts": len(view.parts),
            "attachments": len(view.attachments),
            "max_depth": view.max_depth,
            "ambiguous": bool(evasive),
            "ambiguities": [{"code": a.code, "path": a.path, "detail": a.detail} for a in view.ambiguities],
            "defects": sorted(set(view.defects)),
        }
        return LayerFindings(facts, tuple(symbols))

    def policy_rules(self, settings: MimeCheckSettings) -> list[PolicyRule]:
        reply = Reply("554", "5.6.0", "Message refused: ambiguous MIME structure")
        rule = action_rule("ambiguous", "MIME_AMBIGUOUS", settings.ambiguous_action, reply, "ambiguous MIME")
        return [rule] if rule is not None else []
