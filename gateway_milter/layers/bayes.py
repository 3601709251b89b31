"""Bayesian classification (Robinson/Fisher chi-square over OSB features), SpamAssassin-style
``BAYES_xx`` symbols. Token counts in the state store (Redis or embedded), global, per domain
and per user with fallback; a scope is used only after ``min_learned`` messages of each class.

Autolearn (``autolearn``): the scoring layer calls :func:`autolearn` with the total score
without Bayes; a message at or above ``autolearn_spam`` is learned as spam, at or below
``autolearn_ham`` as ham, by the process's background learner (antispam/learner.py: in
batches, off the message's path). Never in scan mode. The scoring layer first applies
SpamAssassin's safeguards (Plugin::AutoLearnThreshold): spam needs
``autolearn_min_header_points`` and ``autolearn_min_body_points``, Bayes's own points not
saying ham (-1 or more) and a total judged spam; ham Bayes's points not saying spam (+1 or
less) and a total not judged spam; with ``autolearn_on_error``, only what Bayes misjudged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from gateway_milter.antispam.bayes import BayesClassifier, learn_item, storable_scopes
from gateway_milter.antispam.learner import learner
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, SettingsError
from gateway_milter.store import default_store
from gateway_milter.verdict import FailMode, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

log = logging.getLogger("bulwark.bayes")

# (lower bound of the probability, symbol, default score). SpamAssassin 4.0 score set 2
# values, except BAYES_99/BAYES_999 raised (docs/decisions/0042-bayes-classifier.md).
BANDS: tuple[tuple[float, str, float], ...] = (
    (0.999, "BAYES_999", 1.5),
    (0.99, "BAYES_99", 4.0),
    (0.95, "BAYES_95", 3.0),
    (0.80, "BAYES_80", 2.0),
    (0.60, "BAYES_60", 1.5),
    (0.40, "BAYES_50", 0.8),
    (0.20, "BAYES_40", -0.001),
    (0.05, "BAYES_20", -0.001),
    (0.01, "BAYES_05", -0.5),
    (0.0, "BAYES_00", -1.9),
)
# The sender's history (tokenizer.sender_key: From address and the network it came from):
# learned only as spam, or only as ham, in the scope used (docs/decisions/0055-sender-history.md)
SENDER_SYMBOLS: dict[str, float] = {"BAYES_SENDER_SPAM": 1.0, "BAYES_SENDER_HAM": -1.0}
# bound of the autolearn minimums (a negative one lets any share of points through)
MAX_AUTOLEARN_MIN_POINTS = 100.0


@dataclass(frozen=True, slots=True)
class BayesSettings(BaseSettings):
    # autolearn writes into the global model: one domain's thresholds (autolearn_spam -100)
    # would teach it every message of that domain as spam
    global_only_fields: ClassVar[frozenset[str]] = frozenset({"autolearn", "autolearn_spam", "autolearn_ham",
                                                              "autolearn_min_header_points",
                                                              "autolearn_min_body_points",
                                                              "autolearn_on_error"})
    min_learned: int = 200  # messages of EACH class a scope must have learned before use
    per_domain: bool = True
    per_user: bool = False
    autolearn: bool = True
    autolearn_spam: float = 12.0  # score without Bayes at or above which spam is learned
    autolearn_ham: float = 0.1  # ... at or below which ham is learned
    # spam is learned only with at least this many of those points from header rules and from
    # body rules (SpamAssassin's AutoLearnThreshold: 3 and 3; the scoring layer checks them)
    autolearn_min_header_points: float = 3.0
    autolearn_min_body_points: float = 3.0
    # learn only what Bayes got wrong or was unsure of: not spam it put at BAYES_99 or above,
    # not ham it put at BAYES_00 (SpamAssassin's bayes_auto_learn_on_error)
    autolearn_on_error: bool = False
    scores: dict[str, float] = field(default_factory=dict)  # override BAYES_xx scores
    sender_history: bool = True  # BAYES_SENDER_SPAM / BAYES_SENDER_HAM from the sender's learned mail
    # characters that start an address extension (alice+news@): a user's scope is named by the
    # address without it, as Postfix's recipient_delimiter delivers it; empty: none
    recipient_delimiter: str = "+"

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.min_learned < 1:
            raise SettingsError("min_learned", "must be at least 1")
        if self.autolearn_ham >= self.autolearn_spam:
            raise SettingsError("autolearn_ham", "must be below autolearn_spam")
        for name in ("autolearn_min_header_points", "autolearn_min_body_points"):
            if not -MAX_AUTOLEARN_MIN_POINTS <= getattr(self, name) <= MAX_AUTOLEARN_MIN_POINTS:  # (NaN too)
                raise SettingsError(name, f"must be -{MAX_AUTOLEARN_MIN_POINTS:g}..{MAX_AUTOLEARN_MIN_POINTS:g}")
        check_recipient_delimiter(self.recipient_delimiter)
        known = {b[1] for b in BANDS} | set(SENDER_SYMBOLS)
        for k in self.scores:
            if k not in known:
                raise SettingsError(f"scores.{k}", f"unknown symbol (known: {', '.join(sorted(known))})")


def check_recipient_delimiter(d: str) -> None:
    """A ``recipient_delimiter`` setting: up to 8 characters that can start an address extension."""
    if len(d) > 8 or any(c in "@\"\\" or c.isspace() or not c.isprintable() for c in d):
        raise SettingsError("recipient_delimiter", "must be up to 8 characters, none of them @, a quote, a "
                                                   "backslash, white space or a control character")


def user_address(address: str, delimiters: str = "+") -> str:
    """The address a per-user scope is named by: lower case, its address extension cut at the
    first of ``delimiters`` (``alice+news@example.com`` is ``alice@example.com``: one user, one
    scope, as the mailbox is one; not a leading one, ``+team@`` stays)."""
    a = address.strip().lower()
    local, at, domain = a.rpartition("@")
    if not at or not delimiters:
        return a
    cuts = [i for i in (local.find(d, 1) for d in delimiters) if i > 0]
    return (local[:min(cuts)] if cuts else local) + "@" + domain


def scopes_for(ctx: MessageContext, settings: BayesSettings) -> list[str]:
    """Most specific first: the single local recipient, the policy domain, then global."""
    out: list[str] = []
    local = [r for r in ctx.recipients if r.is_local]
    if settings.per_user and len(local) == 1:
        # (under the address a BATV tag was made for: one tag a message made a scope each)
        out.append("user:" + user_address(local[0].plain, settings.recipient_delimiter))
    if settings.per_domain and ctx.policy_domain:
        out.append("dom:" + ctx.policy_domain)
    out.append("global")
    return storable_scopes(out)


def classifier(settings: BayesSettings) -> BayesClassifier:
    return BayesClassifier(default_store(), settings.min_learned)


def _centre(lo: float, hi: float) -> float:
    mid = (lo + hi) / 2.0
    return round(math.log(mid / (1.0 - mid)), 3)


# log-odds at the middle of each band's probability interval: with fitted scores and a
# continuous Bayes input (docs/decisions/0046-fitted-scores.md) a band's score is what a message
# at its centre gets, and the log-odds adds its distance from there
BAND_CENTRES: dict[str, float] = {name: _centre(lo, hi) for (lo, name, _s), hi in
                                  zip(BANDS, (1.0,) + tuple(b[0] for b in BANDS[:-1]), strict=True)}


def band(p: float, scores: dict[str, float] | None = None) -> tuple[str, float]:
    for lo, name, score in BANDS:
        if p >= lo:
            return name, (scores or {}).get(name, score)
    return BANDS[-1][1], BANDS[-1][2]


class BayesLayer(Layer[BayesSettings]):
    id = "bayes"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN  # token store down: no Bayes score, mail flows
    Settings = BayesSettings
    title = "Bayesian classifier"
    description = "Bayesian content classifier trained on local mail"

    def check(self, ctx: MessageContext, settings: BayesSettings) -> LayerFindings:
        view = message_view(ctx)
        res = classifier(settings).classify(view, scopes_for(ctx, settings))
        if res.probability is None:
            return LayerFindings({"probability": None, "reason": "not enough learned messages", "tokens": res.tokens})
        name, score = band(res.probability, settings.scores)
        symbols = [self.symbol(name, score, f"p={res.probability:.4f} scope={res.scope}")]
        if name == "BAYES_999":  # as in SpamAssassin, BAYES_999 adds to BAYES_99
            symbols.append(self.symbol("BAYES_99", settings.scores.get("BAYES_99", BANDS[1][2]), ""))
        sender = sender_symbol(res.sender_spam, res.sender_ham) if settings.sender_history else None
        if sender is not None:  # (after the band: the scoring layer reads the band first)
            symbols.append(self.symbol(sender, settings.scores.get(sender, SENDER_SYMBOLS[sender]),
                                       f"sender learned {res.sender_spam} spam, {res.sender_ham} ham"))
        return LayerFindings({"probability": res.probability, "logodds": res.logodds, "token_logit": res.token_logit,
                              "scope": res.scope,
                              "tokens": res.tokens, "used": res.used,
                              "sender": [res.sender_spam, res.sender_ham]}, tuple(symbols))


def sender_symbol(spam: int, ham: int) -> str | None:
    """BAYES_SENDER_SPAM when the sender's learned mail was all spam, BAYES_SENDER_HAM when it
    was all ham; None when there is none or both."""
    if spam and not ham:
        return "BAYES_SENDER_SPAM"
    if ham and not spam:
        return "BAYES_SENDER_HAM"
    return None


def autolearn(ctx: MessageContext, settings: BayesSettings, score_without_bayes: float,
              into_global: bool = True) -> str | None:
    """Learn the message when its score is clearly spam or ham; returns "spam"/"ham"/None.
    The item is handed to the background learner when the transaction ends (spam only when the
    message was refused, held or discarded, ham only when it was delivered whole), which learns
    it within a fraction of a second; store errors are logged
    there, never raised: autolearn must not affect the verdict. ``into_global`` False: only
    into the domain's and user's scopes (a score shaped by one domain's own settings must not
    teach the model every domain reads)."""
    if ctx.scan_mode or not settings.enabled or not settings.autolearn:
        return None
    scopes = scopes_for(ctx, settings)
    if not into_global:
        scopes = [s for s in scopes if s != "global"]
        if not scopes:
            return None
    if score_without_bayes >= settings.autolearn_spam:
        label = "spam"
    elif score_without_bayes <= settings.autolearn_ham:
        label = "ham"
    else:
        return None
    try:
        item = learn_item(message_view(ctx), label == "spam", scopes)
        if not ctx.in_transaction or not learner().has_room():
            # (outside a transaction, nothing to wait for; a full queue refuses it, logged there)
            return label if learner().submit(default_store(), item) else None
        # queued once the transaction's answer is known (Gateway.finish): a message the policy
        # refuses or discards after scoring is not learned as ham, one delivered after all
        # (an admin's script overruling the score) not as spam, a deferred one not yet
        ctx.autolearn_pending = (default_store(), item)
    except Exception:
        log.warning("bayes autolearn failed", exc_info=True)
        return None
    return label
