"""Autolearn teaches the global model only from scores the global settings made: when the
message's domain has settings of its own that change the score without Bayes (its scored
layers' settings, which layers count), it learns into the domain's (and user's) scopes only, so
one domain's admin cannot teach the model every domain reads. Thresholds of its own change
nothing there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.learner import learner
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules


# 13 points, 10 body and 3 header: spam to learn (autolearn_spam 12, and SpamAssassin's minimums
# of 3 header and 3 body points)
PRIZE = "body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 10\nheader LOCAL_WON Subject =~ /won/\nscore LOCAL_WON 3\n"


def _learned(store: MemoryStore, scope: str) -> tuple[int, int]:
    assert learner().flush(timeout=10.0)
    st = BayesClassifier(store).stats(scope)
    return st["spam_learned"], st["ham_learned"]


def _settings(rules: Path) -> dict[str, Any]:
    return {"rules": {"include_default": False, "rule_dirs": [str(rules)]},
            "scoring": {"layers": ["rules", "bayes"], "fitted_scores": False}}


@pytest.mark.parametrize("own", [
    {"scoring": {"layers": ["bayes"]}},  # rules no longer count: every message scores 0 -> "ham"
    {"rules": {"rule_dirs": []}},  # a scored layer's settings of its own
])
def test_a_domain_that_shapes_the_score_learns_into_its_own_scope_only(tmp_path: Path, store: MemoryStore,
                                                                      own: dict[str, Any]) -> None:
    d = write_rules(tmp_path, PRIZE)
    pol = policy(_settings(d), domains=[{"name": "example.com", "settings": own}])
    res = make_ctx(msg("you won", "a prize claim"), pol).layer("scoring")
    assert res.fact("autolearn") in ("spam", "ham")
    assert _learned(store, "global") == (0, 0)
    assert sum(_learned(store, "dom:example.com")) == 1


def test_a_domain_with_its_own_thresholds_still_teaches_global(tmp_path: Path, store: MemoryStore) -> None:
    d = write_rules(tmp_path, PRIZE)
    pol = policy(_settings(d), domains=[{"name": "example.com",
                                         "settings": {"scoring": {"quarantine_score": 4, "tag_score": 4}}}])
    res = make_ctx(msg("you won", "a prize claim"), pol).layer("scoring")
    assert res.fact("autolearn") == "spam"
    assert _learned(store, "global") == (1, 0) and _learned(store, "dom:example.com") == (1, 0)


def test_the_global_settings_teach_global_as_before(tmp_path: Path, store: MemoryStore) -> None:
    d = write_rules(tmp_path, PRIZE)
    res = make_ctx(msg("you won", "a prize claim"), policy(_settings(d))).layer("scoring")
    assert res.fact("autolearn") == "spam"
    assert _learned(store, "global") == (1, 0)
