"""Scores an administrator sets in local rule files win over the fitted scores: ``score RULE 0``
in a rule directory takes a stock rule's points away, as it does in SpamAssassin's local.cf
(sarules.load_rules' ``local_from``, the rules layer's fact ``local_scored``, the scoring layer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.sarules import load_rules
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy


def _dir(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "local.cf").write_text(text)
    return d


def test_load_rules_records_the_scores_local_files_set_last(tmp_path: Path) -> None:
    stock = _dir(tmp_path, "stock", "body A /a/\nbody B /b/\nscore A 1\nscore B 1\n")
    local = _dir(tmp_path, "local", "score A 0\nbody C /c/\nscore C 2\n")
    rs = load_rules([stock, local], 2, local_from=1)
    assert rs.local_scores == {"A", "C"} and rs.rules["A"].score == 0.0 and rs.rules["B"].score == 1.0
    assert load_rules([stock, local], 2).local_scores == set()  # (no local_from: none are local)


def _score(tmp_path: Path, name: str, rules: str, **scoring: object) -> tuple[float, object]:
    d = _dir(tmp_path, name, rules)
    doc = {"rules": {"rule_dirs": [str(d)]}, "scoring": {"layers": ["rules"], **scoring}}
    ctx = make_ctx(msg("menu", "a pizza tonight"), policy(doc))
    return ctx.layer("scoring").fact("parts").get("rules", 0.0), ctx.layer("rules").fact("local_scored")


@pytest.fixture
def stock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small stock set in place of Debian's: BANG_GUAR, which the fitted file scores
    (:func:`fitted_bang_guar`, without Bayes), with a score of its own."""
    from gateway_milter.antispam import sarules

    d = _dir(tmp_path, "stock", "body BANG_GUAR /pizza/\nscore BANG_GUAR 0.001\n")
    monkeypatch.setattr(sarules, "default_rule_dirs", lambda sa_update=False: [d])
    return d


def fitted_bang_guar() -> float:
    """BANG_GUAR's score in the shipped fitted file's set without Bayes (the file is fitted
    again after changes; a figure of it written here went stale)."""
    from gateway_milter.layers.scoring import FITTED_SCORE_FILE, score_sets

    score = score_sets(FITTED_SCORE_FILE)["BANG_GUAR"][0]
    assert score not in (0.0, 0.001, 2.5)  # else the tests below could not tell the scores apart
    return score


def test_a_local_score_line_wins_over_the_fitted_score(tmp_path: Path, store: MemoryStore, stock: Path) -> None:
    fitted, own = _score(tmp_path, "none", "# nothing of mine\n")
    assert fitted == fitted_bang_guar() and own is None
    mine, own = _score(tmp_path, "scored", "score BANG_GUAR 2.5\n")
    assert mine == 2.5 and own == ["BANG_GUAR"]
    both, own = _score(tmp_path, "more", "body LOCAL_X /tonight/\nscore LOCAL_X 1\nscore BANG_GUAR 0.25\n")
    assert both == 1.25 and sorted(own) == ["BANG_GUAR", "LOCAL_X"]


def test_a_score_file_of_ones_own_still_wins(tmp_path: Path, store: MemoryStore, stock: Path) -> None:
    f = tmp_path / "mine.cf"
    f.write_text("score BANG_GUAR 4 4 4 4\n")
    mine, own = _score(tmp_path, "scored", "score BANG_GUAR 2.5\n", score_file=str(f))
    assert mine == 4.0 and own == ["BANG_GUAR"]


def test_without_the_stock_set_no_score_is_local(tmp_path: Path, store: MemoryStore) -> None:
    d = _dir(tmp_path, "all", "body BANG_GUAR /pizza/\nscore BANG_GUAR 2.5\n")
    doc = {"rules": {"include_default": False, "rule_dirs": [str(d)]}, "scoring": {"layers": ["rules"]}}
    ctx = make_ctx(msg("menu", "a pizza tonight"), policy(doc))
    assert ctx.layer("scoring").fact("parts")["rules"] == fitted_bang_guar()
    assert ctx.layer("rules").fact("local_scored") is None
