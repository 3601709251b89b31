"""Autolearn's last two checks from SpamAssassin 4.0's Plugin::AutoLearnThreshold: Bayes's own
points must not contradict the label (learner_said_ham_points -1, learner_said_spam_points +1),
and ``autolearn_on_error`` (bayes_auto_learn_on_error) learns only what Bayes misjudged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.bayes import BayesSettings
from gateway_milter.pipeline.runner import LayerResult
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

# 3 header and 10 body points: a basis of 13, spam to learn by every other check
RULES = ("header LOCAL_WON Subject =~ /won/\nscore LOCAL_WON 3\n"
         "body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 10\n")
SPAM = msg("you won", "a prize to claim")
HAM = msg("lunch", "the agenda for tomorrow")


def _doc(rules: Path, bayes: dict[str, Any]) -> dict[str, Any]:
    return {"rules": {"include_default": False, "rule_dirs": [str(rules)]},
            "scoring": {"layers": ["rules", "bayes"], "fitted_scores": False},
            "bayes": {"min_learned": 1, "sender_history": False, **bayes}}


def _teach(store: MemoryStore, doc: dict[str, Any], as_ham: bytes, as_spam: bytes) -> None:
    bc = BayesClassifier(store, 1)
    bc.learn(message_view(make_ctx(as_ham, policy(doc))), False)
    bc.learn(message_view(make_ctx(as_spam, policy(doc))), True)


def _learned(store: MemoryStore) -> tuple[int, int]:
    from gateway_milter.antispam.learner import learner

    assert learner().flush(timeout=10.0)
    st = BayesClassifier(store).stats()
    return st["spam_learned"], st["ham_learned"]


def _bayes_points(res: LayerResult) -> float:
    return float(res.fact("parts").get("bayes", 0.0))


def test_spam_is_not_learned_when_bayes_says_ham(tmp_path: Path, store: MemoryStore) -> None:
    # the same words learned as ham (another message), unrelated words as spam
    doc = _doc(write_rules(tmp_path, RULES), {"scores": {"BAYES_00": -3.0, "BAYES_05": -3.0}})
    _teach(store, doc, msg("you won", "a prize to claim!"), msg("pills", "cheap pills now"))
    res = make_ctx(SPAM, policy(doc)).layer("scoring")
    assert _bayes_points(res) == -3.0 and res.fact("score") == 10.0  # still spam by the total
    assert res.fact("autolearn") == "no" and res.fact("autolearn_reason") == "Bayes points -3 < -1"
    assert _learned(store) == (1, 1)  # the two taught above, nothing more


def test_ham_is_not_learned_when_bayes_says_spam(tmp_path: Path, store: MemoryStore) -> None:
    doc = _doc(write_rules(tmp_path, RULES), {"scores": {"BAYES_99": 2.0, "BAYES_999": 0.0, "BAYES_95": 2.0}})
    _teach(store, doc, msg("pills", "cheap pills now"), msg("lunch", "the agenda for tomorrow!"))
    res = make_ctx(HAM, policy(doc)).layer("scoring")
    assert _bayes_points(res) == 2.0 and res.fact("score") == 2.0  # under tag_score: ham by the total
    assert res.fact("autolearn") == "no" and res.fact("autolearn_reason") == "Bayes points 2 > 1"
    assert _learned(store) == (1, 1)


def test_points_of_one_either_way_do_not_stop_it(tmp_path: Path, store: MemoryStore) -> None:
    # SpamAssassin's bounds are strict: -1 and +1 themselves still learn
    doc = _doc(write_rules(tmp_path, RULES), {"scores": {"BAYES_00": -1.0, "BAYES_05": -1.0}})
    _teach(store, doc, msg("you won", "a prize to claim!"), msg("pills", "cheap pills now"))
    res = make_ctx(SPAM, policy(doc)).layer("scoring")
    assert _bayes_points(res) == -1.0 and res.fact("autolearn") == "spam"
    assert _learned(store) == (2, 1)


@pytest.mark.parametrize("on_error", [False, True])
def test_on_error_only_skips_what_bayes_already_judged(tmp_path: Path, store: MemoryStore, on_error: bool) -> None:
    doc = _doc(write_rules(tmp_path, RULES), {"autolearn_on_error": on_error})
    for i in range(6):  # sure of both (a single pair gives BAYES_95)
        _teach(store, doc, msg("lunch", f"the agenda for tomorrow {i}"), msg("you won", f"a prize to claim {i}"))
    spam = make_ctx(SPAM, policy(doc)).layer("scoring")
    ham = make_ctx(HAM, policy(doc)).layer("scoring")
    assert "BAYES_99" in spam.fact("tests") and "BAYES_00" in ham.fact("tests")
    if on_error:
        assert spam.fact("autolearn_reason") == "on error only: Bayes said spam already"
        assert ham.fact("autolearn_reason") == "on error only: Bayes said ham already"
        assert _learned(store) == (6, 6)
    else:
        assert (spam.fact("autolearn"), ham.fact("autolearn")) == ("spam", "ham")
        assert _learned(store) == (7, 7)


def test_on_error_still_learns_what_bayes_was_unsure_of(tmp_path: Path, store: MemoryStore) -> None:
    doc = _doc(write_rules(tmp_path, RULES), {"autolearn_on_error": True, "min_learned": 5})
    res = make_ctx(SPAM, policy(doc)).layer("scoring")  # Bayes not in use yet: no BAYES_ symbol
    assert not [t for t in res.fact("tests") if t.startswith("BAYES_")]
    assert res.fact("autolearn") == "spam" and _learned(store) == (1, 0)


def test_on_error_is_off_by_default_and_global_only() -> None:
    assert BayesSettings().autolearn_on_error is False
    assert "autolearn_on_error" in BayesSettings.global_only_fields
