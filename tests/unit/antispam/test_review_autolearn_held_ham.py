"""A message the gateway holds as spam is never autolearned as ham. With ``quarantine_score``
below ``tag_score`` (quarantined from 4, flagged from 6), a message at 4.5 whose points all
come from a rule autolearn leaves out (tflags noautolearn: a basis of 0, under autolearn_ham)
was quarantined as spam and learned as ham at once: the ham check went by ``tag_score`` alone."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.learner import learner
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

RULES = "body LOCAL_HELD /lottery/\nscore LOCAL_HELD 4.5\ntflags LOCAL_HELD noautolearn\n"


def _doc(rules: Path, scoring: dict[str, float]) -> dict[str, object]:
    return {"rules": {"include_default": False, "rule_dirs": [str(rules)]},
            "scoring": {"layers": ["rules", "bayes"], "fitted_scores": False, **scoring}}


def _learned(store: MemoryStore) -> tuple[int, int]:
    assert learner().flush(timeout=10.0)
    st = BayesClassifier(store).stats()
    return st["spam_learned"], st["ham_learned"]


def test_it_does_not_learn_as_ham_a_message_it_quarantines(tmp_path: Path, store: MemoryStore) -> None:
    d = write_rules(tmp_path, RULES)
    pol = policy(_doc(d, {"quarantine_score": 4.0, "tag_score": 6.0}))
    res = make_ctx(msg("hello", "lottery claim"), pol).layer("scoring")
    assert res.fact("score") == 4.5 and res.has("SPAM_SCORE_QUARANTINE")
    assert res.fact("autolearn") == "no"
    assert res.fact("autolearn_reason") == "total 4.5 >= 4"
    assert _learned(store) == (0, 0)


def test_it_still_learns_ham_under_both_thresholds(tmp_path: Path, store: MemoryStore) -> None:
    d = write_rules(tmp_path, RULES)
    pol = policy(_doc(d, {"quarantine_score": 5.0, "tag_score": 6.0}))
    res = make_ctx(msg("hello", "lottery claim"), pol).layer("scoring")
    assert res.fact("score") == 4.5 and not res.has("SPAM_SCORE_QUARANTINE")
    assert res.fact("autolearn") == "ham"
    assert _learned(store) == (0, 1)
