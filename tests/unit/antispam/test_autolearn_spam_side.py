"""Autolearn's spam-side safeguards, as SpamAssassin 4.0's Plugin::AutoLearnThreshold has them
(autolearn_discriminator): spam is learned only with at least 3 points from header rules and 3
from body rules (PerMsgStatus::_get_autolearn_points: head_only_points, body_only_points; a
meta's points split by its sub-rules), unless a hit has tflags autolearn_force, and only when
the total judges the message spam ("scored as ham but autolearn wanted spam"). The reason a
message is not learned is the scoring layer's fact ``autolearn_reason``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from gateway_milter import layers
from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.learner import learner
from gateway_milter.antispam.sarules import AUTOLEARN_BODY, AUTOLEARN_HEADER, Rule, autolearn_areas, load_rules
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.base import SettingsError, settings_from_dict
from gateway_milter.layers.bayes import BayesSettings
from gateway_milter.layers.scoring import _area_points
from gateway_milter.pipeline.runner import LayerResult
from gateway_milter.policy.snapshot import validate_document
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Symbol
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

# "won" in the subject is a header rule, "prize" and "claim" in the body body rules
WON = "header LOCAL_WON Subject =~ /won/\n"
PRIZE = "body LOCAL_PRIZE /prize/\n"
CLAIM = "body LOCAL_CLAIM /claim/\n"
SPAM = msg("you won", "a prize to claim")


def _doc(rules: Path, scoring: dict[str, Any] | None = None, bayes: dict[str, Any] | None = None) -> dict[str, Any]:
    # fitted scores off: the rules' own scores, so that the figures are the ones written here
    return {"rules": {"include_default": False, "rule_dirs": [str(rules)]},
            "scoring": {"layers": ["rules", "bayes"], "fitted_scores": False, **(scoring or {})},
            "bayes": bayes or {}}


def _learned(store: MemoryStore) -> tuple[int, int]:
    assert learner().flush(timeout=10.0)
    st = BayesClassifier(store).stats()
    return st["spam_learned"], st["ham_learned"]


def _rules(tmp_path: Path, text: str) -> Path:
    # a directory of its own for each rule set: the engine looks at a directory's files at most
    # once a second (engine.RECHECK_S), so a test that rewrote one would still run the old rules
    sub = tmp_path / f"set{sum(1 for _ in tmp_path.iterdir())}"
    sub.mkdir()
    return write_rules(sub, text)


def _score(tmp_path: Path, rules: str, raw: bytes = SPAM, **doc: dict[str, Any]) -> LayerResult:
    return make_ctx(raw, policy(_doc(_rules(tmp_path, rules), **doc))).layer("scoring")


def test_it_learns_spam_with_3_header_and_3_body_points(tmp_path: Path, store: MemoryStore) -> None:
    res = _score(tmp_path, WON + "score LOCAL_WON 3\n" + PRIZE + "score LOCAL_PRIZE 10\n")
    assert res.fact("score") == 13.0 and res.fact("autolearn") == "spam"
    assert res.fact("autolearn_reason") is None
    assert _learned(store) == (1, 0)


def test_it_does_not_learn_spam_with_too_few_header_points(tmp_path: Path, store: MemoryStore) -> None:
    res = _score(tmp_path, WON + "score LOCAL_WON 1.2\n" + PRIZE + "score LOCAL_PRIZE 13\n")
    assert res.fact("score") == 14.2  # spam by any threshold, and 14.2 >= autolearn_spam without Bayes
    assert res.fact("autolearn") == "no" and res.fact("autolearn_reason") == "header points 1.2 < 3"
    assert _learned(store) == (0, 0)


def test_it_does_not_learn_spam_with_too_few_body_points(tmp_path: Path, store: MemoryStore) -> None:
    res = _score(tmp_path, WON + "score LOCAL_WON 13\n" + PRIZE + "score LOCAL_PRIZE 2.5\n")
    assert res.fact("autolearn") == "no" and res.fact("autolearn_reason") == "body points 2.5 < 3"
    assert _learned(store) == (0, 0)


def test_a_message_with_neither_says_body_first_as_spamassassin(tmp_path: Path, store: MemoryStore) -> None:
    # a full rule counts for neither area (only header, body, rawbody, uri and mimeheader do)
    res = _score(tmp_path, "full LOCAL_FULL /prize/\nscore LOCAL_FULL 13\n")
    assert res.fact("autolearn_reason") == "body points 0 < 3" and _learned(store) == (0, 0)


@pytest.mark.parametrize(("kind", "rule"), [
    ("rawbody", "rawbody LOCAL_B /prize/\n"),
    ("uri", "uri LOCAL_B /example\\.com/\n"),
    ("mimeheader", "mimeheader LOCAL_B Content-Type =~ /text\\/plain/\n"),  # a body eval in SpamAssassin
])
def test_rawbody_uri_and_mimeheader_rules_count_as_body(tmp_path: Path, store: MemoryStore, kind: str,
                                                        rule: str) -> None:
    raw = msg("you won", "a prize: http://www.example.com/claim")
    res = _score(tmp_path, WON + "score LOCAL_WON 3\n" + rule + "score LOCAL_B 10\n", raw)
    assert res.fact("autolearn") == "spam", (kind, res.fact("autolearn_reason"))


def test_the_minimums_are_settings(tmp_path: Path, store: MemoryStore) -> None:
    rules = WON + "score LOCAL_WON 1\n" + PRIZE + "score LOCAL_PRIZE 12\n"
    res = _score(tmp_path, rules, bayes={"autolearn_min_header_points": 0.5})
    assert res.fact("autolearn") == "spam"
    res = _score(tmp_path, rules, msg("you won again", "a prize to claim"),
                 bayes={"autolearn_min_body_points": 12.5})
    assert res.fact("autolearn_reason") == "body points 12 < 12.5"
    assert _learned(store) == (1, 0)


def test_tflags_autolearn_force_lifts_the_minimums(tmp_path: Path, store: MemoryStore) -> None:
    res = _score(tmp_path, PRIZE + "score LOCAL_PRIZE 13\ntflags LOCAL_PRIZE autolearn_force\n")
    assert res.fact("autolearn") == "spam" and _learned(store) == (1, 0)


def test_tflags_autolearn_header_and_autolearn_body_move_a_rules_points(tmp_path: Path, store: MemoryStore) -> None:
    # both rules are body rules; the flag makes LOCAL_PRIZE's points header points (Bug 7907)
    res = _score(tmp_path, PRIZE + "score LOCAL_PRIZE 3\ntflags LOCAL_PRIZE autolearn_header\n"
                 + CLAIM + "score LOCAL_CLAIM 10\n")
    assert res.fact("autolearn") == "spam" and _learned(store) == (1, 0)


@pytest.mark.parametrize(("scoring", "says"), [
    ({"tag_score": 20, "quarantine_score": 20, "reject_score": 30}, "total 13 < 20"),
    # spam needs both thresholds that say spam: flagged (tag) and held (quarantine)
    ({"tag_score": 5, "quarantine_score": 20, "reject_score": 30}, "total 13 < 20"),
    ({"tag_score": 20, "quarantine_score": 5}, "total 13 < 20"),
])
def test_it_does_not_learn_spam_the_total_does_not_judge_spam(tmp_path: Path, store: MemoryStore,
                                                              scoring: dict[str, Any], says: str) -> None:
    res = _score(tmp_path, WON + "score LOCAL_WON 3\n" + PRIZE + "score LOCAL_PRIZE 10\n", scoring=scoring)
    assert res.fact("score") == 13.0
    assert res.fact("autolearn") == "no" and res.fact("autolearn_reason") == says
    assert _learned(store) == (0, 0)


def test_a_total_pulled_under_the_threshold_by_bayes_is_not_learned_as_spam(tmp_path: Path,
                                                                            store: MemoryStore) -> None:
    # the basis goes without Bayes; here a learned ham-like sender takes the total under 5
    # (Bayes adds at most 5.5 points here: BAYES_99 and BAYES_999). SpamAssassin's check of
    # Bayes's own points comes first and says why (tests/unit/antispam/test_autolearn_learner_said.py)
    rules = WON + "score LOCAL_WON 3\n" + PRIZE + "score LOCAL_PRIZE 10\n"
    doc = _doc(_rules(tmp_path, rules), bayes={"scores": {"BAYES_SENDER_HAM": -20.0}, "min_learned": 1})
    ham = make_ctx(msg("lunch", "the agenda for tomorrow"), policy(doc))
    other_sender = msg("offer", "cheap pills").replace(b"alice@sender.test", b"carol@elsewhere.test")
    bc = BayesClassifier(store, 1)
    bc.learn(message_view(ham), False)
    bc.learn(message_view(make_ctx(other_sender, policy(doc))), True)
    res = make_ctx(SPAM, policy(doc)).layer("scoring")
    assert "BAYES_SENDER_HAM" in res.fact("tests"), res.fact("tests")
    assert res.fact("score") < 5 and res.fact("autolearn") == "no"
    bayes_points = res.fact("parts")["bayes"]
    assert bayes_points < -1 and res.fact("autolearn_reason") == f"Bayes points {bayes_points:g} < -1"
    assert _learned(store) == (1, 1)  # the two learned above, nothing more


def test_the_reasons_on_the_other_paths(tmp_path: Path, store: MemoryStore) -> None:
    rules = WON + "score LOCAL_WON 3\n" + PRIZE + "score LOCAL_PRIZE 2\n"
    res = _score(tmp_path, rules)
    assert res.fact("autolearn") == "no" and res.fact("autolearn_reason") == "basis 5 between 0.1 and 12"
    res = _score(tmp_path, rules, msg("you won", "a prize"), bayes={"autolearn": False})
    assert res.fact("autolearn_reason") == "off"
    # the ham side as before: the total must not judge it spam
    res = _score(tmp_path, "body LOCAL_NICE /prize/\nscore LOCAL_NICE 6\ntflags LOCAL_NICE noautolearn\n",
                 msg("hello", "a prize for you"))
    assert res.fact("autolearn") == "no" and res.fact("autolearn_reason") == "total 6 >= 5"
    assert _learned(store) == (0, 0)


# -- the areas, computed once per rule set ------------------------------------------------------

def _areas(tmp_path: Path, text: str) -> tuple[dict[str, tuple[int, int]], frozenset[str]]:
    rs = load_rules([_rules(tmp_path, text)])
    assert not rs.unsupported, rs.unsupported
    return autolearn_areas(rs.rules, [n for n in rs.rules if not n.startswith("__")])


def test_a_meta_rules_area_is_judged_by_its_sub_rules(tmp_path: Path) -> None:
    areas, force = _areas(tmp_path, (
        "header __H Subject =~ /won/\nbody __B /prize/\nrawbody __R /claim/\nfull __F /x/\n"
        "meta __M __H && __B\n"
        "meta LOCAL_MIXED __H && __B && __R\n"  # 1 header, 2 body sub-rules
        "meta LOCAL_TWICE (__H && __B) || (__H && __R)\n"  # each occurrence counts: 2 and 2
        "meta LOCAL_HEAD __H && !__F\n"  # a full sub-rule counts for neither
        "meta LOCAL_OF_METAS __M || __F\n"  # sub-rules that are metas: not followed
        "meta LOCAL_UNDEFINED __H && NOT_DEFINED_HERE\n"
        "meta LOCAL_FORCED __B\ntflags LOCAL_FORCED autolearn_header autolearn_force\n"
        "meta LOCAL_QUIET __H\ntflags LOCAL_QUIET noautolearn\n"))
    assert areas == {"LOCAL_MIXED": (1, 2), "LOCAL_TWICE": (2, 2), "LOCAL_HEAD": AUTOLEARN_HEADER,
                     "LOCAL_UNDEFINED": AUTOLEARN_HEADER, "LOCAL_FORCED": AUTOLEARN_HEADER}
    assert force == {"LOCAL_FORCED"}


def test_a_meta_splits_its_points_in_the_ratio_of_its_sub_rules(tmp_path: Path, store: MemoryStore) -> None:
    meta = "header __H Subject =~ /won/\nbody __B /prize/\nbody __C /claim/\nmeta LOCAL_META __H && __B && __C\n"
    # 8 points: 2.667 header, 5.333 body; with 5 body points more the basis is 13
    res = _score(tmp_path, meta + "score LOCAL_META 8\n" + "body LOCAL_TO /to claim/\nscore LOCAL_TO 5\n")
    assert res.fact("autolearn_reason") == "header points 2.667 < 3"
    # 9 points: 3 header, 6 body
    res = _score(tmp_path, meta + "score LOCAL_META 9\n" + "body LOCAL_TO /to claim/\nscore LOCAL_TO 4\n",
                 msg("you won", "a prize to claim, again"))
    assert res.fact("autolearn") == "spam"
    assert res.fact("autolearn_reason") is None and _learned(store) == (1, 0)


def test_rule_types_without_a_set(tmp_path: Path) -> None:
    rules = {"A": Rule("A", "header", "", "", eval_fn="check_rbl", tflags=frozenset({"net"})),
             "B": Rule("B", "header", "", "", eval_fn="check_dns_sender"),
             "C": Rule("C", "header", "", "", eval_fn="check_for_missing_to_header"),
             "D": Rule("D", "body", "", "", eval_fn="check_bayes", tflags=frozenset({"learn"})),
             "E": Rule("E", "uri", "", ""),
             "F": Rule("F", "rawbody", "", "", tflags=frozenset({"userconf"}))}
    areas, _force = autolearn_areas(rules, list(rules))
    assert areas == {"C": AUTOLEARN_HEADER, "E": AUTOLEARN_BODY}


def test_the_other_layers_count_as_their_spamassassin_counterparts() -> None:
    def res(lid: str, *names: str, facts: dict[str, Any] | None = None) -> tuple[str, LayerResult, tuple[Symbol, ...]]:
        syms = tuple(Symbol(n, 2.0, "", lid) for n in names)
        return lid, LayerResult(lid, facts or {}, syms), syms

    parts = [res("spf", "SPF_FAIL"), res("dmarc", "DMARC_FAIL_REJECT"), res("rdns", "RDNS_NONE", "SENDER_DOMAIN_NO_MX"),
             res("uribl", "URIBL_BLACK"), res("dnsbl", "RCVD_IN_ZEN"), res("dkim", "DKIM_INVALID"),
             res("spamtrap", "SPAMTRAP"),
             res("rules", "LOCAL_META", "LOCAL_OTHER", facts={"autolearn_areas": {"LOCAL_META": (1, 2)}})]
    # header: SPF 2 + DMARC 2 + RDNS_NONE 2 + a third of the meta's 2; body: URIBL 2 + two thirds
    assert _area_points(parts, {}) == (6.667, 3.333, False)
    # the same scores as the basis: the fitted set 0 where the file has the symbol
    assert _area_points(parts, {"SPF_FAIL": (5.0, 1.0)}) == (9.667, 3.333, False)
    forced = res("rules", "LOCAL_X", facts={"autolearn_force": ["LOCAL_X"]})
    assert _area_points([forced], {}) == (0.0, 0.0, True)


# -- the settings -------------------------------------------------------------------------------

def test_the_minimums_default_to_spamassassins_3_and_are_global_only() -> None:
    s = BayesSettings()
    assert (s.autolearn_min_header_points, s.autolearn_min_body_points) == (3.0, 3.0)
    assert {"autolearn_min_header_points", "autolearn_min_body_points"} <= BayesSettings.global_only_fields


@pytest.mark.parametrize("field", ["autolearn_min_header_points", "autolearn_min_body_points"])
@pytest.mark.parametrize("value", [100.5, -101, math.nan, math.inf, "3", True])
def test_it_refuses_minimums_out_of_range(field: str, value: Any) -> None:
    with pytest.raises(SettingsError) as e:
        settings_from_dict(layers.get("bayes").Settings, {field: value}, "settings.bayes.")
    assert e.value.path == f"settings.bayes.{field}"
    with pytest.raises(SettingsError) as e:  # the policy file loader says the same
        validate_document({"settings": {"bayes": {field: value}}})
    assert e.value.path == f"settings.bayes.{field}"


@pytest.mark.parametrize("value", [0, -100, 100, 2.5])
def test_it_accepts_minimums_in_range(value: float) -> None:
    s = settings_from_dict(BayesSettings, {"autolearn_min_header_points": value, "autolearn_min_body_points": value})
    assert s.autolearn_min_header_points == s.autolearn_min_body_points == float(value)
