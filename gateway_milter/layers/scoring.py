"""Message scoring: one total over the scored content layers, mapped to actions by per-domain
thresholds (defaults as SecurityGateway: quarantine at 5, reject at 12).

The total is the sum of the symbol scores of the layers in ``layers`` (each asked through
``ctx.layer``, so each runs at most once). GTUBE (the Generic Test for Unsolicited Bulk Email,
https://spamassassin.apache.org/gtube/) scores 1000. Allow-listed, authenticated and outbound
mail is exempt (each switchable). Threshold symbols carry score 0: they only tell the policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_milter import layers as registry
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.verdict import Direction, FailMode, Outcome, QuarantineQueue, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

log = logging.getLogger("bulwark.scoring")

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_SCORE = 1000.0
SCORED_LAYERS = ("dnsbl", "uribl", "rdns", "spf", "dkim", "dmarc", "arc", "fromscreen", "vbr", "rules",
                 "bayes", "spamtrap")


@dataclass(frozen=True, slots=True)
class ScoringSettings(BaseSettings):
    tag_score: float = 5.0  # X-Spam-Flag: YES and the subject tag from here (SpamAssassin's required_score)
    quarantine_score: float = 5.0
    reject_score: float = 12.0
    quarantine_queue: str = "user"
    subject_tag: str = ""  # e.g. "[SPAM]"; empty: subject unchanged
    add_headers: bool = True  # X-Spam-Status / X-Spam-Score / X-Spam-Flag / X-Spam-Level
    layers: tuple[str, ...] = SCORED_LAYERS
    exempt_allowlisted: bool = True
    exempt_authenticated: bool = True
    exempt_outbound: bool = True
    reject_code: str = "550"
    reject_enhanced: str = "5.7.1"
    reject_text: str = "Message rejected as spam"

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.reject_score < self.quarantine_score:
            raise SettingsError("reject_score", "must not be below quarantine_score")
        if self.quarantine_queue not in ("user", "admin"):
            raise SettingsError("quarantine_queue", "must be user or admin")
        for lid in self.layers:
            if lid not in registry.REGISTRY or lid == "scoring":
                raise SettingsError("layers", f"unknown layer {lid!r}")
        if any(c in self.subject_tag for c in "\r\n\0"):
            raise SettingsError("subject_tag", "must be one line")
        Reply(self.reject_code, self.reject_enhanced, self.reject_text)


def exemption(ctx: MessageContext, settings: ScoringSettings) -> str | None:
    if settings.exempt_allowlisted:
        allow = ctx.facts.get("allowlisted")
        if allow is None and "lists" in registry.available():
            allow = ctx.layer("lists").fact("allowlisted")
        if allow:
            return "allowlisted"
    if settings.exempt_authenticated and ctx.conn.auth_user:
        return "authenticated"
    if settings.exempt_outbound and ctx.direction is Direction.OUTBOUND:
        return "outbound"
    return None


class ScoringLayer(Layer[ScoringSettings]):
    id = "scoring"
    stage = Stage.EOM
    fail_mode = FailMode.TEMPFAIL
    Settings = ScoringSettings
    budget_s = 30.0
    description = "Total spam score and thresholds (tag, quarantine, reject)"

    def check(self, ctx: MessageContext, settings: ScoringSettings) -> LayerFindings:
        why = exemption(ctx, settings)
        if why:
            return LayerFindings({"exempt": why, "score": 0.0, "required": settings.tag_score},
                                 (self.symbol("SCORING_EXEMPT", 0.0, why),))
        available = set(registry.available())
        total = 0.0
        bayes_part = 0.0
        parts: dict[str, float] = {}
        tests: list[str] = []
        for lid in settings.layers:
            if lid not in available:
                continue
            res = ctx.layer(lid)
            s = round(sum(x.score for x in res.symbols), 3)
            if res.symbols:
                parts[lid] = s
                tests += [x.name for x in res.symbols]
            total += s
            if lid == "bayes":
                bayes_part = s
        symbols = []
        if "GTUBE" not in tests and GTUBE in ctx.raw_bytes():  # SpamAssassin's rule set has it too
            symbols.append(self.symbol("GTUBE", GTUBE_SCORE, "GTUBE test string"))
            tests.append("GTUBE")
            total += GTUBE_SCORE
        total = round(total, 3)
        if total >= settings.reject_score:
            symbols.append(self.symbol("SPAM_SCORE_REJECT", 0.0, f"{total:g} >= {settings.reject_score:g}"))
        elif total >= settings.quarantine_score:
            symbols.append(self.symbol("SPAM_SCORE_QUARANTINE", 0.0, f"{total:g} >= {settings.quarantine_score:g}"))
        if total >= settings.tag_score:
            symbols.append(self.symbol("SPAM_SCORE_TAG", 0.0, f"{total:g} >= {settings.tag_score:g}"))
        learned = None
        if "bayes" in available and "bayes" in settings.layers:
            from gateway_milter.layers.bayes import autolearn

            learned = autolearn(ctx, ctx.policy.settings_for("bayes", ctx.policy_domain), total - bayes_part)
        return LayerFindings({"score": total, "required": settings.tag_score, "parts": parts,
                              "tests": sorted(set(tests)), "autolearn": learned or "no"}, tuple(symbols))

    def policy_rules(self, settings: ScoringSettings) -> list[PolicyRule]:
        reply = Reply(settings.reject_code, settings.reject_enhanced, settings.reject_text)
        queue = QuarantineQueue(settings.quarantine_queue)
        return [
            PolicyRule("spam_reject", Outcome.reject(reply, "spam score at or above the reject threshold"),
                       ("SPAM_SCORE_REJECT",)),
            PolicyRule("spam_quarantine", Outcome.quarantine(queue, "spam score at or above the quarantine threshold"),
                       ("SPAM_SCORE_QUARANTINE",)),
        ]
