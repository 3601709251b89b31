"""Autolearn leaves out the points of rules with ``tflags noautolearn`` or ``userconf``, as
SpamAssassin's autolearn does (PerMsgStatus::_get_autolearn_points), and never learns as ham a
message the total scores as spam: a GTUBE message is never autolearned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.learner import learner
from gateway_milter.layers.scoring import GTUBE
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

# fitted scores off: the rules' own scores, so that the figures below are the ones written here
SCORING = {"layers": ["rules", "bayes"], "fitted_scores": False}
# spam is learned only with 3 header and 3 body points (SpamAssassin's minimums): a prize in the
# body and "won" in the subject make 13, enough for autolearn_spam (12) with both
PRIZE = "body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 10\nheader LOCAL_WON Subject =~ /won/\nscore LOCAL_WON 3\n"


def _doc(rules: Path) -> dict[str, Any]:
    return {"rules": {"include_default": False, "rule_dirs": [str(rules)]}, "scoring": dict(SCORING)}


def _learned(store: MemoryStore) -> tuple[int, int]:
    assert learner().flush(timeout=10.0)
    st = BayesClassifier(store).stats()
    return st["spam_learned"], st["ham_learned"]


def test_it_does_not_autolearn_a_gtube_message(tmp_path: Path, store: MemoryStore) -> None:
    d = write_rules(tmp_path, "body LOCAL_NEVER /zzzz-never-zzzz/\nscore LOCAL_NEVER 1\n")
    res = make_ctx(msg("test", GTUBE.decode()), policy(_doc(d))).layer("scoring")
    assert "GTUBE" in res.fact("tests") and res.fact("score") >= 1000
    assert res.fact("autolearn") == "no"
    assert _learned(store) == (0, 0)


def test_it_does_not_autolearn_gtube_found_by_the_rule_set_either(tmp_path: Path, store: MemoryStore) -> None:
    # Debian's set has GTUBE as a rule with tflags userconf noautolearn
    d = write_rules(tmp_path, "body GTUBE /XJS\\*C4JDBQADN1\\.NSBN3\\*2IDNEN\\*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL\\*C\\.34X/\n"
                              "tflags GTUBE userconf noautolearn\nscore GTUBE 1000\n")
    res = make_ctx(msg("test", GTUBE.decode()), policy(_doc(d))).layer("scoring")
    assert res.fact("parts")["rules"] == 1000.0 and res.fact("autolearn") == "no"
    assert _learned(store) == (0, 0)


@pytest.mark.parametrize("tflags", ["noautolearn", "userconf", "nice userconf noautolearn"])
def test_a_rule_with_tflags_noautolearn_does_not_count_toward_autolearn(tmp_path: Path, store: MemoryStore,
                                                                       tflags: str) -> None:
    # LOCAL_PRIZE and LOCAL_WON alone would be learned as spam (13 >= autolearn_spam 12);
    # LOCAL_FLAGGED adds 13 more that autolearn must not see, nor take as ham what it leaves
    d = write_rules(tmp_path, PRIZE + "body LOCAL_FLAGGED /lottery/\nscore LOCAL_FLAGGED 13\n"
                              f"tflags LOCAL_FLAGGED {tflags}\n")
    pol = policy(_doc(d))
    both = make_ctx(msg("you won", "lottery prize claim"), pol).layer("scoring")
    assert both.fact("score") == 26.0 and both.fact("autolearn") == "spam"  # 13 without the flagged rule
    assert _learned(store) == (1, 0)
    flagged = make_ctx(msg("lottery again", "lottery claim"), pol).layer("scoring")
    # 13 points, all from the flagged rule: 0 for autolearn, yet a spam total is never learned as ham
    assert flagged.fact("score") == 13.0 and flagged.fact("autolearn") == "no"
    assert _learned(store) == (1, 0)


def test_a_rule_without_the_flag_still_counts(tmp_path: Path, store: MemoryStore) -> None:
    d = write_rules(tmp_path, "body LOCAL_LOTTERY /lottery/\nscore LOCAL_LOTTERY 10\ntflags LOCAL_LOTTERY nice\n"
                              "header LOCAL_WON Subject =~ /won/\nscore LOCAL_WON 3\n")
    res = make_ctx(msg("you won", "lottery claim"), policy(_doc(d))).layer("scoring")
    assert res.fact("autolearn") == "spam" and _learned(store) == (1, 0)


def test_a_negative_noautolearn_rule_does_not_make_ham_of_spam(tmp_path: Path, store: MemoryStore) -> None:
    # a welcome-listed sender (USER_IN_WELCOMELIST: -100, userconf nice noautolearn) lowers the
    # total, not what autolearn goes by: 13 without it, spam to learn, not ham. A total of -87
    # is not judged spam, so it is not learned as spam either (SpamAssassin: "scored as ham but
    # autolearn wanted spam")
    d = write_rules(tmp_path, PRIZE + "body LOCAL_WELCOME /lottery/\nscore LOCAL_WELCOME -100\n"
                                      "tflags LOCAL_WELCOME userconf nice noautolearn\n")
    res = make_ctx(msg("you won", "lottery prize claim"), policy(_doc(d))).layer("scoring")
    assert res.fact("score") == -87.0 and res.fact("autolearn") == "no"
    assert res.fact("autolearn_reason") == "total -87 < 5"
    assert _learned(store) == (0, 0)


def test_it_does_not_autolearn_when_bayes_failed_on_the_message(tmp_path: Path, store: MemoryStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The Bayes layer fails open (its store down: no Bayes score, mail flows); autolearn then
    queued the message for that store anyway and X-Spam-Status said autolearn=spam."""
    from gateway_milter.layers import bayes as bayes_layer
    from gateway_milter.store import StoreError

    class Down:
        def classify(self, *a: Any, **kw: Any) -> Any:
            raise StoreError("redis: connection refused")

    d = write_rules(tmp_path, PRIZE)
    pol = policy(_doc(d))
    ok = make_ctx(msg("you won", "a prize"), pol).layer("scoring")
    assert ok.fact("autolearn") == "spam"  # the control: this message is learned when Bayes works
    assert _learned(store) == (1, 0)
    monkeypatch.setattr(bayes_layer, "classifier", lambda settings: Down())
    ctx = make_ctx(msg("you won again", "another prize"), pol)
    res = ctx.layer("scoring")
    assert ctx.layer("bayes").error and res.fact("score") >= 12
    assert res.fact("autolearn") == "no" and res.fact("autolearn_reason") == "Bayes failed"
    assert _learned(store) == (1, 0)
