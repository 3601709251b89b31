"""X-Spam-Report (``scoring.add_report``, off by default): on spam, one line per symbol that
added points, with what it added to the total (the fitted score, not the rule file's), the
most first, in SpamAssassin's ``*  2.5 NAME description`` form; descriptions that come from the
message kept to one line of printable ASCII."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway_milter.transforms.spamheaders import REPORT_LINES, spam_headers
from gateway_milter.verdict import Outcome, Symbol
from tests.unit.antispam.helpers import make_ctx, msg, policy


def _policy(tmp_path: Path, **scoring: Any) -> Any:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "local.cf").write_text("body PIZZA /pizza/\nscore PIZZA 1\ndescribe PIZZA Mentions pizza\n"
                                    "body TONIGHT /tonight/\nscore TONIGHT 2\ndescribe TONIGHT Mentions tonight\n"
                                    "body NEVER /zzzqqq/\nscore NEVER 4\n")
    scores = tmp_path / "fitted.cf"
    scores.write_text("score PIZZA 0.5 0.5 0.4 0.4\nscore TONIGHT 5.25 5.25 3 3\n")
    return policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                   "scoring": {"layers": ["rules"], "score_file": str(scores), **scoring}})


def _headers(ctx: Any) -> dict[str, str]:
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    return {e.name: e.value for e in res.header_edits if e.op == "add"}


def test_spam_gets_a_report_of_the_points_each_symbol_added(tmp_path: Path) -> None:
    ctx = make_ctx(msg("menu", "a pizza tonight"), _policy(tmp_path, add_report=True))
    h = _headers(ctx)
    assert h["X-Spam-Flag"] == "YES" and h["X-Spam-Score"] == "5.8"
    assert h["X-Spam-Report"] == "\n\t*  5.2 TONIGHT Mentions tonight\n\t*  0.5 PIZZA Mentions pizza"


def test_no_report_by_default_nor_on_ham(tmp_path: Path) -> None:
    ctx = make_ctx(msg("menu", "a pizza tonight"), _policy(tmp_path))
    assert "X-Spam-Report" not in _headers(ctx)
    ctx = make_ctx(msg("menu", "a pizza"), _policy(tmp_path, add_report=True))
    h = _headers(ctx)
    assert "X-Spam-Flag" not in h and "X-Spam-Report" not in h


def test_descriptions_from_the_message_stay_one_printable_line(tmp_path: Path) -> None:
    ctx = make_ctx(msg("menu", "a pizza tonight"), _policy(tmp_path, add_report=True))
    ctx.layer("scoring")
    rules = ctx.runner.peek("rules")  # type: ignore[union-attr]
    assert rules is not None
    # a symbol whose description carries what a sender wrote (a domain, an address)
    hostile = Symbol("PIZZA", 1.0, "evil\r\nBcc: x@y.test\t\u00e9" + "x" * 200, "rules")
    k = next(j for j, x in enumerate(rules.symbols) if x.name == "PIZZA")
    i = ctx.symbols.index(rules.symbols[k])
    object.__setattr__(rules, "symbols", tuple(hostile if j == k else x for j, x in enumerate(rules.symbols)))
    ctx.symbols[i] = hostile
    report = _headers(ctx)["X-Spam-Report"]
    assert "\r" not in report and "\nBcc" not in report and "\u00e9" not in report
    line = next(x for x in report.split("\n\t") if "PIZZA" in x)
    assert line.startswith("*  0.5 PIZZA evil Bcc: x@y.test") and line.endswith("...") and len(line) <= 80


def test_a_long_report_names_how_many_more(tmp_path: Path) -> None:
    lines = "".join(f"body R{i} /pizza/\nscore R{i} 0.{i + 1}\n" for i in range(REPORT_LINES + 5))
    rules = tmp_path / "many"
    rules.mkdir()
    (rules / "local.cf").write_text(lines)
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], "fitted_scores": False, "add_report": True, "tag_score": 1.0}})
    first, *report = _headers(make_ctx(msg("menu", "a pizza"), pol))["X-Spam-Report"].split("\n\t")
    assert first == "" and len(report) == REPORT_LINES + 1 and report[-1] == "* (5 more)"
