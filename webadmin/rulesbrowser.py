"""Security → Heuristic rules: the rule set the published policy runs, rule by rule, with the
points each one adds (as the scoring layer counts them: a score set in the administrators' own
rule files first, then the fitted scores, else SpamAssassin's), its description and flags, and
how often it hit in recent mail the reader may see, good mail apart from junk: a rule that hits
good mail is one to look at. Sub-rules (``__NAME``: no points of their own) are listed on
request only.

The hit counts read the newest SAMPLE messages of the message log the reader may see
(webadmin.access.messages_visible_to), as the dashboard's "Top symbols in junk" does."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from gateway_milter.layers.rules import RulesSettings, engine_from_settings, rule_set_ready
from gateway_milter.layers.scoring import ScoringSettings, fitted_scores
from gateway_milter.policy.snapshot import PolicySnapshot

SAMPLE = 5000  # newest messages whose symbols are counted
PAGE = 100


@dataclass(frozen=True)
class RuleRow:
    name: str
    kind: str
    describe: str
    points: float  # with Bayes in use (the usual case once it has learned enough)
    points_without_bayes: float
    origin: str  # "local" (set in an administrator's rule file after the default set), "fitted", "rule files"
    tflags: tuple[str, ...]
    source: str  # file:line
    junk_hits: int
    good_hits: int


def hit_counts(messages: Any, sample: int = SAMPLE) -> tuple[Counter[str], Counter[str], int]:
    """(junk hits, good hits, messages read) per symbol among the newest ``sample`` messages.
    Good mail is accepted mail, as the hits' link into the log and the dashboard count it: a
    tempfailed message (the spam an antivirus outage held) is neither."""
    from reports.charts import symbol_names
    from reports.search import JUNK

    junk: Counter[str] = Counter()
    good: Counter[str] = Counter()
    n = 0
    for action, syms in messages.order_by("-time").values_list("action", "symbols")[:sample]:
        n += 1
        if action in JUNK:
            junk.update(symbol_names(syms))
        elif action == "accept":
            good.update(symbol_names(syms))
    return junk, good, n


def ready(snapshot: PolicySnapshot) -> bool:
    """Whether the published rule set is built in this process (its build started when not)."""
    settings = snapshot.settings_for("rules", None)
    assert isinstance(settings, RulesSettings)
    return rule_set_ready(settings)


def points_domain(snapshot: PolicySnapshot, principal: Any, asked: str = "") -> str | None:
    """Whose scoring settings the points are read from: a domain may set its own
    ``fitted_scores`` and score file choice. A global administrator: the domain asked for (its
    main name), else the global settings (None); a domain administrator: the domain asked for
    when it is theirs, else the first of theirs, never the global settings, which their mail
    may not be counted with (the page showed the global points to everyone)."""
    dom = snapshot.canonical_domain(asked.strip().lower()) if asked.strip() else None
    if principal.is_global:
        return dom
    theirs = sorted(principal.domains)
    return dom if dom in principal.domains else (theirs[0] if theirs else None)


def catalogue(snapshot: PolicySnapshot, messages: Any, *, query: str = "", subrules: bool = False,
              only: str = "", domain: str | None = None) -> tuple[list[RuleRow], int]:
    """The rules of the published rule set that match ``query`` (in the name or description,
    case-insensitive), sub-rules only when asked, ``only``: ``hits`` (hit in the sample),
    ``good`` (hit good mail) or ``scored`` (not 0 points); and how many messages the counts read.
    Points as the scoring layer counts them for mail to ``domain`` (None: the global settings)."""
    rules_settings = snapshot.settings_for("rules", None)
    scoring_settings = snapshot.settings_for("scoring", domain)
    assert isinstance(rules_settings, RulesSettings) and isinstance(scoring_settings, ScoringSettings)
    engine = engine_from_settings(rules_settings)
    fitted = fitted_scores(scoring_settings)  # ({} when fitted scores are off)
    junk, good, read = hit_counts(messages)
    q = query.strip().lower()
    rows = []
    for name, r in engine.rules.items():
        if name.startswith("__") and not subrules:
            continue
        if q and q not in name.lower() and q not in (r.describe or "").lower():
            continue
        if name in engine.local_scores:
            pair, origin = (r.score, r.score), "local"
        elif name in fitted:
            pair, origin = fitted[name], "fitted"
        else:
            pair, origin = (r.score, r.score), "rule files"
        row = RuleRow(name, r.kind, r.describe or "", round(pair[1], 3), round(pair[0], 3), origin,
                      tuple(sorted(r.tflags)), r.source, junk[name], good[name])
        if only == "hits" and not (row.junk_hits or row.good_hits):
            continue
        if only == "good" and not row.good_hits:
            continue
        if only == "scored" and not (row.points or row.points_without_bayes):
            continue
        rows.append(row)
    rows.sort(key=lambda x: (-(x.junk_hits + x.good_hits), x.name))
    return rows, read


def page_of(rows: list[RuleRow], page: int) -> tuple[list[RuleRow], int, int]:
    """The rows of one page (PAGE a page), the page number kept within 1..pages, and pages."""
    pages = max(1, -(-len(rows) // PAGE))
    page = min(max(page, 1), pages)
    return rows[(page - 1) * PAGE: page * PAGE], page, pages


RULE_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")
_SCORE_LINE = re.compile(r"[ \t]*score[ \t]+(\S+)(?:[ \t].*)?")


def with_score(local_rules: str, name: str, points: float | None) -> str:
    """The rules layer's own rules (``local_rules``) with ``name``'s points set: every earlier
    ``score NAME ...`` line of that rule removed and ``score NAME points`` appended (``None``:
    only removed, the rule back to the points it had). The rest of the text is kept as it is."""
    kept = []
    for line in local_rules.split("\n"):
        m = _SCORE_LINE.fullmatch(line.rstrip("\r"))
        if m and m.group(1) == name:
            continue
        kept.append(line)
    text = "\n".join(kept).rstrip("\n")
    if points is not None:
        text = (text + "\n" if text else "") + f"score {name} {points:g}"
    return text + "\n" if text else ""


def has_score(local_rules: str, name: str) -> bool:
    """Whether the rules layer's own rules set ``name``'s points (a ``score NAME ...`` line)."""
    return any((m := _SCORE_LINE.fullmatch(line.rstrip("\r"))) is not None and m.group(1) == name
               for line in local_rules.split("\n"))


def parse_points(text: str) -> float:
    """Points as an administrator types them; ValueError unless a finite number in -100..100."""
    v = float(text.strip().replace(",", "."))
    if not math.isfinite(v) or not -100 <= v <= 100:
        raise ValueError("points are a number from -100 to 100")
    return round(v, 3)
