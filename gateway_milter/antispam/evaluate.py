"""Corpus evaluation of the content pipeline (rules + Bayes + scoring), used by
``manage.py bayes evaluate`` and bench/antispam_eval.py.

Messages are split deterministically (by a hash of their path) into a training and a test
part; Bayes learns the training part; each test message then goes through the real layers
(``scoring`` asks ``rules`` and ``bayes``) in scan mode, in time order (Date header).
Optionally (``online``) each message is learned with its true label right after it is scored,
as "mark as spam/ham" feedback would do.

:func:`fit_scores` re-fits the symbol scores (:mod:`.scorefit`) on the TRAINING part only:
rule hits of every training message, and the Bayes log-odds (or bands) from out-of-fold
classifiers (the training part split in ``folds`` by a hash; each fold classified by a
classifier that learned the others), so that the Bayes evidence is as strong as on unseen mail,
not the inflated verdict on messages the classifier has learned. The deployed classifier
learned every fold, so its log-odds run larger than the out-of-fold ones; the weight is divided
by that growth, extrapolated from classifiers of ``folds - 2`` and ``folds - 1`` folds
(:func:`logodds_growth`).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import mktime_tz, parsedate_tz
from operator import attrgetter
from pathlib import Path
from typing import Any

from gateway_milter.antispam.bayes import BayesClassifier, mixed_order
from gateway_milter.antispam.scorefit import LOGODDS_CLIP_DEFAULT
from gateway_milter.antispam.saview import message_view
from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.pipeline.rawmessage import iter_messages, split_message, starts_with_field
from gateway_milter.pipeline.runner import LayerRunner
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store import StateStore, set_default_store
from gateway_milter.verdict import Stage


@dataclass(slots=True)
class Sample:
    label: str  # "spam" | "ham"
    path: str
    raw: bytes
    when: float


@dataclass(slots=True)
class EvalReport:
    n_train_spam: int = 0
    n_train_ham: int = 0
    scores: list[tuple[str, float]] = field(default_factory=list)  # (label, score)
    cpu_ms: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)  # per test message (tuning, reports)
    errors: int = 0

    def rates(self, threshold: float) -> tuple[float, float]:
        spam = [s for lab, s in self.scores if lab == "spam"]
        ham = [s for lab, s in self.scores if lab == "ham"]
        caught = sum(s >= threshold for s in spam) / len(spam) if spam else 0.0
        fp = sum(s >= threshold for s in ham) / len(ham) if ham else 0.0
        return caught, fp

    def one_minus_auc_pct(self) -> float:
        """(1 - AUC) x 100 by the rank-sum (Mann-Whitney) statistic; ties count half."""
        return one_minus_auc_pct([s for lab, s in self.scores if lab == "spam"],
                                 [s for lab, s in self.scores if lab == "ham"])

    def caught_at_max_fp(self, max_fp: float = 0.001) -> tuple[float, float | None]:
        """(share of spam caught, threshold) at the strictest operating point the target names:
        spam scoring above the score of the (k+1)-th highest ham, k = floor(max_fp x ham), so
        that at most k ham are above the threshold. (0, None) without ham or spam."""
        spam = [s for lab, s in self.scores if lab == "spam"]
        ham = sorted((s for lab, s in self.scores if lab == "ham"), reverse=True)
        if not spam or not ham:
            return 0.0, None
        k = int(max_fp * len(ham))
        threshold = ham[min(k, len(ham) - 1)]
        return sum(s > threshold for s in spam) / len(spam), threshold

    def summary(self, quarantine: float, reject: float) -> dict[str, Any]:
        c5, fp5 = self.rates(quarantine)
        c12, fp12 = self.rates(reject)
        strict, strict_at = self.caught_at_max_fp(0.001)
        cpu = sorted(self.cpu_ms)
        n_spam = sum(1 for lab, _ in self.scores if lab == "spam")
        return {
            "train_spam": self.n_train_spam, "train_ham": self.n_train_ham,
            "test_spam": n_spam, "test_ham": len(self.scores) - n_spam,
            "caught_at_quarantine_pct": round(100 * c5, 2), "ham_fp_at_quarantine_pct": round(100 * fp5, 3),
            "caught_at_reject_pct": round(100 * c12, 2), "ham_fp_at_reject_pct": round(100 * fp12, 3),
            "one_minus_auc_pct": round(self.one_minus_auc_pct(), 4),
            "caught_at_max_0.1pct_fp_pct": round(100 * strict, 2),
            "threshold_at_max_0.1pct_fp": None if strict_at is None else round(strict_at, 3),
            "cpu_ms_median": round(cpu[len(cpu) // 2], 2) if cpu else 0.0,
            "cpu_ms_p95": round(cpu[int(len(cpu) * 0.95)], 2) if cpu else 0.0,
            "errors": self.errors,
        }


def one_minus_auc_pct(spam_scores: Iterable[float], ham_scores: Iterable[float]) -> float:
    """(1 - AUC) x 100 by the rank-sum (Mann-Whitney) statistic: the share of (spam, ham) pairs
    where the spam does not score above the ham; ties count half. 0 without spam or ham."""
    spam = sorted(spam_scores)
    ham = list(ham_scores)
    if not spam or not ham:
        return 0.0
    wrong = 0.0
    for h in ham:
        lo = bisect.bisect_left(spam, h)
        hi = bisect.bisect_right(spam, h)
        wrong += lo + 0.5 * (hi - lo)  # spam below or equal to this ham
    return 100.0 * wrong / (len(spam) * len(ham))


def load_corpus(spam_dirs: Iterable[Path], ham_dirs: Iterable[Path], limit: int | None = None,
                skipped: list[str] | None = None) -> list[Sample]:
    """The corpus's messages, as ``bayes train`` finds them: empty files and files that are no
    mail (a README beside the messages) left out, their names added to ``skipped``; they were
    learned and scored as samples and moved the figures thresholds are tuned by."""
    out: list[Sample] = []
    for label, dirs in (("spam", spam_dirs), ("ham", ham_dirs)):
        n = 0
        for d in dirs:
            for path, raw in iter_messages(Path(d)):
                if Path(path).name == "cmds":
                    continue
                if not starts_with_field(raw):  # (nor is an empty or blank file)
                    if skipped is not None:
                        skipped.append(str(path))
                    continue
                out.append(Sample(label, path, raw, _date(raw)))
                n += 1
                if limit and n >= limit:
                    break
            if limit and n >= limit:
                break
    return out


def _date(raw: bytes) -> float:
    headers, _ = split_message(raw[:65536])
    for n, v in headers:
        if n.lower() == "date":
            t = parsedate_tz(v)
            if t:
                try:
                    return float(mktime_tz(t))
                except (OverflowError, ValueError):
                    return 0.0
    return 0.0


def is_training(path: str, fraction: float) -> bool:
    h = int(hashlib.sha256(Path(path).name.encode()).hexdigest()[:8], 16)
    return (h / 0xFFFFFFFF) < fraction


def make_context(raw: bytes, policy: PolicySnapshot, client_ip: str = "192.0.2.10") -> MessageContext:
    headers, body = split_message(raw, verbatim=True)
    ctx = MessageContext(ConnectionInfo(client_ip=client_ip, client_name="unknown", helo="client.example"),
                         policy, scan_mode=True)
    for n, v in headers:
        ctx.add_raw_header(n, v)
    ctx.body.write(body)
    ret = ctx.header("Return-Path") or ""
    ctx.mail_from = ret.strip().strip("<>")
    ctx.envelope_guessed = True  # a corpus file has no envelope
    ctx.runner = LayerRunner()
    ctx.runner.enter_stage(Stage.EOM)
    return ctx


DEFAULT_LAYERS = ("rules", "bayes")


def evaluate(samples: list[Sample], store: StateStore, *, train_fraction: float = 0.5, online: bool = False,
             min_learned: int = 200, layers: tuple[str, ...] = DEFAULT_LAYERS, fitted_scores: bool = True,
             score_file: str = "", progress: Callable[[int, int], None] | None = None) -> EvalReport:
    set_default_store(store)
    policy = PolicySnapshot.from_document({"settings": {
        "scoring": {"layers": list(layers), "exempt_outbound": False, "fitted_scores": fitted_scores,
                    "score_file": score_file},
        "bayes": {"min_learned": min_learned, "autolearn": False},
    }})
    bayes = BayesClassifier(store, min_learned)
    # spam and ham mixed: the token model learns online, in the order it is given messages
    train = mixed_order([s for s in samples if is_training(s.path, train_fraction)], attrgetter("raw"))
    test = sorted((s for s in samples if not is_training(s.path, train_fraction)), key=lambda s: (s.when, s.path))
    rep = EvalReport()
    total = len(train) + len(test)
    done = 0
    for s in train:
        ctx = make_context(s.raw, policy)
        bayes.learn(message_view(ctx), s.label == "spam")
        if s.label == "spam":
            rep.n_train_spam += 1
        else:
            rep.n_train_ham += 1
        done += 1
        if progress:
            progress(done, total)
    for s in test:
        ctx = make_context(s.raw, policy)
        t0 = time.process_time()
        detail: dict[str, Any] = {"path": s.path, "label": s.label}
        try:
            res = ctx.layer("scoring")
            score = float(res.fact("score", 0.0))
            detail["parts"] = res.fact("parts", {})
            if "bayes" in layers:
                bres = ctx.layer("bayes")
                detail.update(p=bres.fact("probability"), logodds=bres.fact("logodds"),
                              token_logit=bres.fact("token_logit"), bayes_symbols=[x.name for x in bres.symbols])
            if "rules" in layers:
                detail["hits"] = ctx.layer("rules").fact("hits", [])
        except Exception as e:  # noqa: BLE001 - counted, never hidden
            rep.errors += 1
            score = 0.0
            detail["error"] = f"{type(e).__name__}: {e}"
        detail["score"] = score
        rep.details.append(detail)
        rep.cpu_ms.append((time.process_time() - t0) * 1000)
        rep.sizes.append(len(s.raw))
        rep.scores.append((s.label, score))
        if online:
            bayes.learn(message_view(ctx), s.label == "spam")
        done += 1
        if progress:
            progress(done, total)
    return rep


def _fold(path: str, folds: int) -> int:
    return int(hashlib.sha256(("fold:" + Path(path).name).encode()).hexdigest()[:8], 16) % folds


@dataclass(slots=True)
class FitResult:
    without_bayes: dict[str, float]
    with_bayes: dict[str, float]
    info: dict[str, Any]


def logodds_growth(pairs: list[tuple[float, float]], folds: int) -> float:
    """How much larger the Bayes log-odds of a classifier that learned all ``folds`` folds are
    than those of one that learned ``folds - 1`` (the out-of-fold values the fit sees), from
    ``pairs`` of log-odds of the same messages by classifiers that learned ``folds - 2`` and
    ``folds - 1`` folds: the least-squares slope s through the origin, and log-odds taken to
    grow as a power of the number of learned messages, s = ((f-1)/(f-2))^a, so the factor is
    (f/(f-1))^a. 1 when there is nothing to go by or they do not grow."""
    sxx = sum(a * a for a, _b in pairs)
    if folds < 3 or sxx <= 0.0:
        return 1.0
    slope = sum(a * b for a, b in pairs) / sxx
    if slope <= 1.0:
        return 1.0
    alpha = math.log(slope) / math.log((folds - 1) / (folds - 2))
    return float((folds / (folds - 1)) ** alpha)


def fit_scores(samples: list[Sample], *, train_fraction: float = 0.5, folds: int = 5, min_learned: int = 200,
               l2: float = 0.3, max_fp: float = 0.001, bayes_input: str = "logodds",
               logodds_clip: float = LOGODDS_CLIP_DEFAULT, prior: str = "spamassassin", token_model: bool = True,
               progress: Callable[[int, int], None] | None = None) -> FitResult:
    """Fit the score sets on the training part of ``samples`` (see the module docstring).
    ``bayes_input``: "logodds" (the clipped log-odds as one continuous input; a band's score is
    then the offset that places 5 points plus the points of its centre's log-odds) or "bands"
    (one indicator per band). ``prior``: what the L2 term pulls each weight toward,
    "spamassassin" (its score) or "zero" (SpamAssassin's sign rule kept either way).
    ``token_model``: with "logodds", the token model's logit (out of fold, as the Bayes
    log-odds) is one more continuous input (``token_logit WEIGHT`` in the file; ADR 0056).
    ``info[...]["cv_caught_at_max_fp_pct"]``: the fit's own cross-validation on the training
    part (spam out of fold above the out-of-fold ham threshold at ``max_fp``)."""
    if bayes_input not in ("logodds", "bands"):
        raise ValueError(f"bayes_input must be logodds or bands, not {bayes_input!r}")
    if prior not in ("spamassassin", "zero"):
        raise ValueError(f"prior must be spamassassin or zero, not {prior!r}")
    from gateway_milter.antispam import scorefit
    from gateway_milter.layers.bayes import BAND_CENTRES, BANDS, band
    from gateway_milter.store.memory import MemoryStore

    policy = PolicySnapshot.from_document({"settings": {"rules": {"use_bayes": False}}})
    # (spam and ham mixed: the fold classifiers' token models learn online, in this order)
    train = mixed_order([s for s in samples if is_training(s.path, train_fraction)], attrgetter("raw"))
    total = len(train) * 2
    done = 0
    rows: list[tuple[bool, frozenset[str], int]] = []
    views = []
    defaults: dict[str, float] = {name: score for _lo, name, score in BANDS}
    for s in train:
        ctx = make_context(s.raw, policy)
        views.append(message_view(ctx))
        res = ctx.layer("rules")
        for x in res.symbols:
            defaults.setdefault(x.name, x.score)
        rows.append((s.label == "spam", frozenset(x.name for x in res.symbols), _fold(s.path, folds)))
        done += 1
        if progress:
            progress(done, total)
    bayes_syms: list[frozenset[str]] = [frozenset()] * len(train)
    bayes_vals: list[tuple[tuple[str, float], ...]] = [()] * len(train)
    pairs: list[tuple[float, float]] = []  # (log-odds from folds - 2 folds, from folds - 1 folds)
    tpairs: list[tuple[float, float]] = []  # the same for the token model's logit
    for k in range(folds):
        bc = BayesClassifier(MemoryStore(), min_learned)
        for (spam, _h, f), v in zip(rows, views, strict=True):
            if f != k:
                bc.learn(v, spam)
        smaller = None
        if bayes_input == "logodds" and folds > 2:
            smaller = BayesClassifier(MemoryStore(), min_learned)
            for (spam, _h, f), v in zip(rows, views, strict=True):
                if f not in (k, (k + 1) % folds):
                    smaller.learn(v, spam)
        for i, ((_spam, _h, f), v) in enumerate(zip(rows, views, strict=True)):
            if f != k:
                continue
            c = bc.classify(v)
            if c.probability is not None:
                name, _ = band(c.probability)
                bayes_syms[i] = frozenset({name, "BAYES_99"} if name == "BAYES_999" else {name})
                bayes_vals[i] = ((scorefit.LOGODDS, scorefit.clip_logodds(c.logodds, logodds_clip)),)
                if token_model and c.token_logit is not None:
                    bayes_vals[i] += ((scorefit.TOKEN_LOGIT, c.token_logit),)
                if smaller is not None and (c2 := smaller.classify(v)).probability is not None:
                    pairs.append((c2.logodds, c.logodds))
                    if c.token_logit is not None and c2.token_logit is not None:
                        tpairs.append((c2.token_logit, c.token_logit))
            done += 1
            if progress:
                progress(done, total)
    info: dict[str, Any] = {"train_spam": sum(r[0] for r in rows), "train_ham": sum(not r[0] for r in rows),
                            "folds": folds, "l2": l2, "max_fp": max_fp, "bayes_input": bayes_input, "prior": prior,
                            "token_model": token_model and bayes_input == "logodds"}
    # the fit's prior: SpamAssassin's scores, or (almost) zero with their signs, which the fit
    # reads as its sign rule (a millionth of a point: nothing against the data)
    priors = defaults if prior == "spamassassin" else {k: v * 1e-6 for k, v in defaults.items()}
    out: list[dict[str, float]] = []
    plain = [scorefit.Example(sp, h) for sp, h, _f in rows]
    if bayes_input == "logodds":
        info["logodds_clip"] = logodds_clip
        with_b = [scorefit.Example(sp, h, b) for (sp, h, _f), b in zip(rows, bayes_vals, strict=True)]
    else:
        with_b = [scorefit.Example(sp, h | b) for (sp, h, _f), b in zip(rows, bayes_syms, strict=True)]
    bands = [name for _lo, name, _s in BANDS if name != "BAYES_999"]
    for label, examples in (("without_bayes", plain), ("with_bayes", with_b)):
        oof_ham: list[float] = []
        oof_spam: list[float] = []
        for k in range(folds):
            part = scorefit.fit([e for e, r in zip(examples, rows, strict=True) if r[2] != k], priors, l2=l2)
            for e, r in zip(examples, rows, strict=True):
                if r[2] == k:
                    (oof_spam if e.spam else oof_ham).append(part.logit(e.symbols, e.values))
        sf = scorefit.fit(examples, priors, l2=l2)
        # never below p = 0.5 (nor at the score of a message without symbols)
        cut = scorefit.threshold_for_fp(oof_ham, max_fp)  # (the out-of-fold ham threshold)
        z5 = max(cut, 0.0, sf.bias + 1.0)
        if label == "with_bayes":  # exactly one of these bands per message: an offset keeps logit units
            if bayes_input == "logodds":  # a band is worth its centre's log-odds (+ the offset)
                # the deployed classifier learned all folds: its log-odds are larger than those
                # the fit saw, by a factor extrapolated from (folds - 2) -> (folds - 1) folds
                growth = logodds_growth(pairs, folds)
                w = sf.weights[scorefit.LOGODDS] / growth
                sf.weights[scorefit.LOGODDS] = w
                info[label] = {"logodds_growth": round(growth, 4)}
                if scorefit.TOKEN_LOGIT in sf.weights:  # recorded, not applied (1.0 so far: ADR 0058)
                    info[label]["token_logit_growth"] = round(logodds_growth(tpairs, folds), 4)
                sf.weights.update({b: w * scorefit.clip_logodds(BAND_CENTRES[b], logodds_clip) for b in bands})
                sf.weights["BAYES_999"] = w * (BAND_CENTRES["BAYES_999"] - BAND_CENTRES["BAYES_99"])
            pts = scorefit.to_points_with_offset(sf, z5, bands)
            if bayes_input == "logodds":
                pts[scorefit.LOGODDS] = round(sf.weights[scorefit.LOGODDS], 4)
                pts[scorefit.LOGODDS_CLIP] = logodds_clip
                info[label]["logodds_weight"] = pts[scorefit.LOGODDS]
            out.append(pts)
        else:
            out.append(scorefit.to_points(sf, z5))
        info[label] = {**info.get(label, {}), "bias": round(sf.bias, 3), "z5": round(z5, 3), "symbols": len(sf.weights),
                       "cv_caught_at_max_fp_pct": round(100.0 * sum(z >= cut for z in oof_spam) / max(1, len(oof_spam)), 2),
                       "cv_one_minus_auc_pct": round(one_minus_auc_pct(oof_spam, oof_ham), 4)}
    return FitResult(out[0], out[1], info)
