"""Fit symbol scores (rule hits and the Bayes log-odds or bands) to a labelled corpus, the way SpamAssassin's
own score generation does it from mass-checks: SpamAssassin's default scores assume its full
rule set with network tests; we run a subset without them, so the weights that separate spam
from ham best for OUR symbols differ.

Model: logistic regression over binary symbol indicators, ``z = b + sum(w_s)``, with an L2
prior that pulls every weight toward its default score (1 point = 1 logit unit before scaling)
and SpamAssassin's sign constraint (a rule with a positive default never gets a negative
weight and vice versa; only the Bayes bands are free), fitted by projected Adam steps on the
full batch. Symbols seen in fewer than ``min_hits`` messages keep their defaults. Continuous
inputs (``Example.values``: the Bayes log-odds, clipped) get one weight each, ``z += w * x``.

The quarantine threshold (5 points) is then placed at the logit ``z5`` chosen on out-of-fold
predictions (``threshold_for_fp``): with Bayes, by an offset on the Bayes bands (one of them
is always present), without Bayes by scaling all scores. The result is written as a
SpamAssassin-format score file (``score NAME value`` lines, plus ``bayes_logodds WEIGHT CLIP``
for the continuous Bayes input), read by the scoring layer
(``scoring.score_file``). Regenerate: ``manage.py bayes fit-scores``
(docs/antispam-evaluation.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FREE_PREFIXES = ("BAYES_",)  # symbols whose sign the fit may choose
# The Bayes log-odds as a continuous input: points per unit of log-odds, and the clip applied to
# the log-odds first. Score files carry them as ``bayes_logodds WEIGHT CLIP`` (with Bayes only);
# read_score_sets returns them under these two names.
LOGODDS = "BAYES_LOGODDS"
LOGODDS_CLIP = "BAYES_LOGODDS_CLIP"
LOGODDS_CLIP_DEFAULT = 80.0  # chosen by cross-validation on the training part (ADR 0046)
# The token model's logit (bayes.token_logit) as a continuous input: ``token_logit WEIGHT``
# in score files (ADR 0056); read_score_sets returns it under this name
TOKEN_LOGIT = "BAYES_TOKEN_LOGIT"
_SCORE_LINE = re.compile(r"^\s*score\s+([A-Za-z0-9_]+)((?:\s+-?[0-9.]+){1,4})\s*(?:#.*)?$")
_LOGODDS_LINE = re.compile(r"^\s*bayes_logodds\s+(-?[0-9.]+)\s+([0-9.]+)\s*(?:#.*)?$")
_TOKEN_LINE = re.compile(r"^\s*token_logit\s+(-?[0-9.]+)\s*(?:#.*)?$")


@dataclass(frozen=True, slots=True)
class Example:
    spam: bool
    symbols: frozenset[str]
    values: tuple[tuple[str, float], ...] = ()  # continuous inputs (name, value), e.g. the Bayes log-odds


@dataclass(slots=True)
class ScoreFit:
    weights: dict[str, float]  # logit units (per unit of value for a continuous input)
    bias: float
    defaults: dict[str, float] = field(default_factory=dict)

    def logit(self, symbols: frozenset[str] | set[str], values: Sequence[tuple[str, float]] = ()) -> float:
        return (self.bias + sum(self.weights.get(s, 0.0) for s in symbols)
                + sum(self.weights.get(n, 0.0) * x for n, x in values))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def fit(examples: Sequence[Example], defaults: Mapping[str, float], *, l2: float = 1.0, iterations: int = 400,
        rate: float = 0.05, min_hits: int = 3, only: tuple[str, ...] | None = None) -> ScoreFit:
    """Fit weights for the symbols hit in at least ``min_hits`` examples (others keep their
    default score). ``l2`` is the prior's strength, summed over the data (not per example).
    ``only``: fit just the symbols with these prefixes (e.g. the Bayes bands); the others keep
    their defaults."""
    counts: dict[str, int] = {}
    for ex in examples:
        for s in ex.symbols:
            counts[s] = counts.get(s, 0) + 1
    names = sorted(s for s, c in counts.items() if c >= min_hits and (only is None or s.startswith(only)))
    continuous = sorted({n for ex in examples for n, _x in ex.values})
    index = {s: i for i, s in enumerate(names + continuous)}
    prior = [float(defaults.get(s, 0.0)) for s in names + continuous]
    sign = [0 if s.startswith(FREE_PREFIXES) else (1 if p > 0 else -1 if p < 0 else 0)
            for s, p in zip(names + continuous, prior, strict=True)]
    fixed = [sum(float(defaults.get(s, 0.0)) for s in ex.symbols if s not in index) for ex in examples]
    rows = [[index[s] for s in ex.symbols if s in index] for ex in examples]
    vrows = [[(index[n], x) for n, x in ex.values] for ex in examples]
    ys = [1.0 if ex.spam else 0.0 for ex in examples]
    w = list(prior)
    b = -5.0
    n = len(examples)
    m1 = [0.0] * (len(w) + 1)
    m2 = [0.0] * (len(w) + 1)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, iterations + 1):
        grad = [l2 * (w[j] - prior[j]) / n for j in range(len(w))]
        gb = 0.0
        for row, vrow, y, fx in zip(rows, vrows, ys, fixed, strict=True):
            z = b + fx + sum(w[j] for j in row) + sum(w[j] * x for j, x in vrow)
            g = (_sigmoid(z) - y) / n
            gb += g
            for j in row:
                grad[j] += g
            for j, x in vrow:
                grad[j] += g * x
        grad.append(gb)
        for j, g in enumerate(grad):
            m1[j] = beta1 * m1[j] + (1 - beta1) * g
            m2[j] = beta2 * m2[j] + (1 - beta2) * g * g
            step = rate * (m1[j] / (1 - beta1 ** t)) / (math.sqrt(m2[j] / (1 - beta2 ** t)) + eps)
            if j == len(w):
                b -= step
                continue
            v = w[j] - step
            if sign[j] > 0:
                v = max(v, 0.0)
            elif sign[j] < 0:
                v = min(v, 0.0)
            w[j] = v
    weights = {s: float(defaults.get(s, 0.0)) for s in counts if s not in index}
    weights.update({s: w[i] for s, i in index.items()})
    return ScoreFit(weights, b, dict(defaults))


def threshold_for_fp(ham_logits: Sequence[float], max_fp: float) -> float:
    """The lowest logit threshold (score >= threshold is spam) with a ham false-positive rate of
    at most ``max_fp`` on the given (out-of-fold) ham logits."""
    hams = sorted(ham_logits, reverse=True)
    allowed = int(max_fp * len(hams))
    if allowed >= len(hams):
        return hams[-1] if hams else 0.0
    return math.nextafter(hams[allowed], math.inf)


def to_points(sf: ScoreFit, z5: float, quarantine: float = 5.0) -> dict[str, float]:
    """Scale logit weights to points so that a total of ``quarantine`` points is logit ``z5``."""
    if z5 <= sf.bias:
        raise ValueError("the threshold logit must lie above the bias")
    k = quarantine / (z5 - sf.bias)
    return {s: round(w * k, 3) for s, w in sf.weights.items()}


def to_points_with_offset(sf: ScoreFit, z5: float, exclusive: Sequence[str], quarantine: float = 5.0) -> dict[str, float]:
    """Keep logit units (1 point = 1 logit, the prior's scale) and move every symbol of an
    ``exclusive`` group (exactly one of them hits whenever any does: the Bayes bands except
    BAYES_999, which comes with BAYES_99) by the same offset so that ``quarantine`` points is
    logit ``z5``. Unlike :func:`to_points` this does not compress the scale, so the reject
    threshold (12) stays 7 logit units above the quarantine one instead of 7 / k."""
    offset = quarantine - (z5 - sf.bias)
    pts = {s: round(w, 3) for s, w in sf.weights.items()}
    for s in exclusive:
        pts[s] = round(sf.weights.get(s, sf.defaults.get(s, 0.0)) + offset, 3)
    return pts


def clip_logodds(logodds: float, clip: float) -> float:
    return max(-clip, min(clip, logodds))


def logodds_points(sets: Mapping[str, tuple[float, float]], logodds: float | None, centre: float = 0.0) -> float:
    """Points for the Bayes log-odds under a score set read by :func:`read_score_sets`, counted
    from ``centre`` (the log-odds whose points the band's score already gives); 0 when the file
    has no continuous Bayes input or Bayes gave no opinion."""
    w = sets.get(LOGODDS)
    if w is None or logodds is None:
        return 0.0
    clip = sets.get(LOGODDS_CLIP, (math.inf, math.inf))[1]
    return w[1] * (clip_logodds(logodds, clip) - clip_logodds(centre, clip))


def write_score_file(path: Path, without_bayes: Mapping[str, float], with_bayes: Mapping[str, float],
                     header: str) -> None:
    """SpamAssassin's four score sets per line: 0 (no Bayes, no network), 1 (network),
    2 (Bayes), 3 (Bayes and network). Our fit has no network tests, so set 1 = set 0 and
    set 3 = set 2. A symbol missing from one fit keeps its score of the other. A continuous
    Bayes input (``LOGODDS`` and ``LOGODDS_CLIP`` in ``with_bayes``) is written as a
    ``bayes_logodds WEIGHT CLIP`` line (SpamAssassin itself has no such directive)."""
    lines = ["# " + h if h else "#" for h in header.splitlines()]
    with_bayes = dict(with_bayes)
    if LOGODDS in with_bayes:
        clip = with_bayes.pop(LOGODDS_CLIP, math.inf)
        lines.append(f"bayes_logodds {with_bayes.pop(LOGODDS):g} {clip:g}")
    if TOKEN_LOGIT in with_bayes:
        lines.append(f"token_logit {with_bayes.pop(TOKEN_LOGIT):g}")
    for s in sorted(set(without_bayes) | set(with_bayes)):
        s2 = with_bayes.get(s, without_bayes.get(s, 0.0))
        s0 = without_bayes.get(s, s2)
        lines.append(f"score {s} {s0:g} {s0:g} {s2:g} {s2:g}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_score_sets(path: Path) -> dict[str, tuple[float, float]]:
    """``score NAME v`` or ``score NAME s0 s1 s2 s3`` lines -> NAME: (set 0, set 2); a
    ``bayes_logodds WEIGHT CLIP`` line -> LOGODDS: (0, WEIGHT), LOGODDS_CLIP: (CLIP, CLIP); a
    ``token_logit WEIGHT`` line -> TOKEN_LOGIT: (0, WEIGHT)."""
    out: dict[str, tuple[float, float]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _SCORE_LINE.match(line)
        if m:
            vals = [float(v) for v in m.group(2).split()]
            out[m.group(1)] = (vals[0], vals[2] if len(vals) >= 3 else vals[0])
        elif m := _LOGODDS_LINE.match(line):
            out[LOGODDS] = (0.0, float(m.group(1)))
            out[LOGODDS_CLIP] = (float(m.group(2)), float(m.group(2)))
        elif m := _TOKEN_LINE.match(line):
            out[TOKEN_LOGIT] = (0.0, float(m.group(1)))
    return out
