"""Score fitting (rule hits + Bayes bands -> scores) and the scoring layer's fitted score sets."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.antispam.scorefit import (
    LOGODDS,
    LOGODDS_CLIP,
    TOKEN_LOGIT,
    Example,
    fit,
    logodds_points,
    read_score_sets,
    threshold_for_fp,
    to_points,
    to_points_with_offset,
    write_score_file,
)
from gateway_milter.layers.base import SettingsError
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules


def toy(n: int = 200, seed: int = 3) -> list[Example]:
    """SPAMMY hits most spam and a little ham, HAMMY the reverse, NOISE either at random;
    BAD_RULE (positive default) hits only ham."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        spam = i % 2 == 0
        syms = set()
        if rnd.random() < (0.9 if spam else 0.05):
            syms.add("SPAMMY")
        if rnd.random() < (0.05 if spam else 0.9):
            syms.add("HAMMY")
        if rnd.random() < 0.5:
            syms.add("NOISE")
        if not spam and rnd.random() < 0.3:
            syms.add("BAD_RULE")
        out.append(Example(spam, frozenset(syms)))
    return out


DEFAULTS = {"SPAMMY": 1.0, "HAMMY": -1.0, "NOISE": 0.5, "BAD_RULE": 2.0, "RARE": 3.0}


def test_it_learns_a_separable_toy_set() -> None:
    sf = fit(toy(), DEFAULTS, l2=0.1, iterations=300)
    assert sf.weights["SPAMMY"] > 1.0 and sf.weights["HAMMY"] < -1.0
    assert abs(sf.weights["NOISE"]) < sf.weights["SPAMMY"] / 2
    assert sf.logit(frozenset({"SPAMMY"})) > 0 > sf.logit(frozenset({"HAMMY"}))


def test_it_keeps_spamassassin_signs_and_rare_defaults() -> None:
    examples = toy() + [Example(True, frozenset({"RARE"}))]
    sf = fit(examples, DEFAULTS, l2=0.1, iterations=300, min_hits=3)
    assert sf.weights["BAD_RULE"] == 0.0  # a spam rule hitting ham is switched off, never negative
    assert sf.weights["RARE"] == 3.0  # one hit: the default stays


def test_it_lets_bayes_bands_take_either_sign() -> None:
    examples = [Example(i % 2 == 0, frozenset({"BAYES_50"} if i % 2 else {"BAYES_99"})) for i in range(100)]
    sf = fit(examples, {"BAYES_50": 0.8, "BAYES_99": 3.5}, l2=0.1, iterations=300)
    assert sf.weights["BAYES_50"] < 0 < sf.weights["BAYES_99"]


def test_it_picks_the_threshold_for_a_false_positive_rate() -> None:
    hams = [float(i) for i in range(1000)]  # 0 .. 999
    t = threshold_for_fp(hams, 0.002)  # two ham may score at or above
    assert sum(h >= t for h in hams) == 2
    assert sum(h >= threshold_for_fp(hams, 0.0) for h in hams) == 0


def test_it_scales_logits_to_the_quarantine_threshold() -> None:
    sf = fit(toy(), DEFAULTS, l2=0.1, iterations=300)
    pts = to_points(sf, z5=2.0)
    total = sum(pts[s] for s in ("SPAMMY", "NOISE"))
    z = sf.logit(frozenset({"SPAMMY", "NOISE"}))
    assert (total >= 5.0) == (z >= 2.0)


def test_it_places_the_threshold_by_an_offset_on_an_exclusive_group() -> None:
    # every example carries exactly one of BAND_LO / BAND_HI
    rnd = random.Random(4)
    examples = [Example(i % 2 == 0, frozenset({"BAND_HI" if (i % 2 == 0) == (rnd.random() < 0.8) else "BAND_LO"} |
                                              ({"SPAMMY"} if i % 2 == 0 and rnd.random() < 0.5 else set())))
                for i in range(300)]
    sf = fit(examples, {"BAND_HI": 1.0, "BAND_LO": -1.0, "SPAMMY": 1.0}, l2=0.1, iterations=300)
    pts = to_points_with_offset(sf, z5=1.5, exclusive=["BAND_HI", "BAND_LO"])
    for syms in ({"BAND_HI"}, {"BAND_LO", "SPAMMY"}, {"BAND_HI", "SPAMMY"}):
        z = sf.logit(frozenset(syms))
        assert abs(sum(pts[s] for s in syms) - (5.0 + z - 1.5)) < 0.01  # 1 point per logit unit, 5 at z5
    assert pts["SPAMMY"] == round(sf.weights["SPAMMY"], 3)


def test_it_writes_and_reads_four_score_sets(tmp_path: Path) -> None:
    p = tmp_path / "scores.cf"
    write_score_file(p, {"A": 1.5, "B": -0.5}, {"A": 0.5, "BAYES_99": 3.0}, "fitted\non a test")
    text = p.read_text()
    assert text.startswith("# fitted\n# on a test\n") and "score A 1.5 1.5 0.5 0.5" in text
    sets = read_score_sets(p)
    assert sets == {"A": (1.5, 0.5), "B": (-0.5, -0.5), "BAYES_99": (3.0, 3.0)}
    (tmp_path / "one.cf").write_text("score C 2\nbody C /c/\n# score D 9\n")
    assert read_score_sets(tmp_path / "one.cf") == {"C": (2.0, 2.0)}


def test_it_scores_with_the_fitted_set_for_the_bayes_state(tmp_path: Path, store: MemoryStore) -> None:
    d = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6\n")
    scores = tmp_path / "fitted.cf"
    scores.write_text("score LOCAL_SPAMMY 2.5 2.5 1.0 1.0\n")
    base = {"rules": {"include_default": False, "rule_dirs": [str(d)], "use_bayes": False},
            "scoring": {"layers": ["rules", "bayes"], "score_file": str(scores), "fitted_scores": True}}
    res = make_ctx(msg("x", "spammy"), policy(base)).layer("scoring")
    assert res.fact("score") == 2.5  # Bayes has learned nothing: set 0
    base["scoring"]["fitted_scores"] = False  # type: ignore[index]
    assert make_ctx(msg("x", "spammy"), policy(base)).layer("scoring").fact("score") == 6.0


def test_it_scores_with_the_shipped_fitted_set_by_default(tmp_path: Path, store: MemoryStore) -> None:
    from gateway_milter.layers.scoring import FITTED_SCORE_FILE

    d = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6\n"
                              "body ACT_NOW_CAPS /spammy/\nscore ACT_NOW_CAPS 2\n")
    doc = {"rules": {"include_default": False, "rule_dirs": [str(d)]}, "scoring": {"layers": ["rules"]}}
    fitted = read_score_sets(FITTED_SCORE_FILE)["ACT_NOW_CAPS"][0]  # set 0: Bayes has learned nothing
    assert fitted != 2.0
    # a rule missing from the file keeps its own score
    assert make_ctx(msg("x", "spammy"), policy(doc)).layer("scoring").fact("score") == round(6.0 + fitted, 3)
    doc["scoring"]["fitted_scores"] = False  # type: ignore[index]
    assert make_ctx(msg("x", "spammy"), policy(doc)).layer("scoring").fact("score") == 8.0


def _spam_with_a_prize(tmp_path: Path, store: MemoryStore, score_file: str,
                       rules: str = "") -> tuple[dict[str, Any], bytes]:
    """A trained Bayes, a rule LOCAL_PRIZE (1 point) and ``rules``, the fitted score file given,
    and a spammy message that hits the rule (its subject starts with "note ")."""
    from tests.unit.antispam.test_bayes import SPAM_WORDS, sample, trained

    trained(store, n=30, min_learned=20)
    d = write_rules(tmp_path, "body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 1\n" + rules)
    scores = tmp_path / "fitted.cf"
    scores.write_text(score_file)
    doc = {"rules": {"include_default": False, "rule_dirs": [str(d)]}, "bayes": {"min_learned": 20},
           "scoring": {"layers": ["rules", "bayes"], "score_file": str(scores)}}
    return doc, sample(SPAM_WORDS, 5000, random.Random(7)) + b" prize"


def test_bayes_alone_never_reaches_the_reject_threshold(tmp_path: Path, store: MemoryStore) -> None:
    from gateway_milter.layers.scoring import ScoringSettings

    assert ScoringSettings().bayes_cap() == 7.0  # reject 12 - quarantine 5
    assert ScoringSettings(quarantine_score=6, reject_score=15).bayes_cap() == 9.0
    assert ScoringSettings(quarantine_score=8, reject_score=8).bayes_cap() is None
    assert ScoringSettings(bayes_max_points=3.5).bayes_cap() == 3.5
    with pytest.raises(SettingsError):
        ScoringSettings(bayes_max_points=-1)
    doc, raw = _spam_with_a_prize(tmp_path, store, "bayes_logodds 1 80\nscore BAYES_99 0 0 2 2\nscore BAYES_999 0 0 2 2\n")
    res = make_ctx(raw, policy(doc)).layer("scoring")
    assert res.fact("bayes_uncapped") > 12.0  # Bayes alone would have rejected
    assert res.fact("parts") == {"bayes": 7.0, "rules": 1.0}
    assert res.fact("score") == 8.0 and "SPAM_SCORE_QUARANTINE" in {s.name for s in res.symbols}
    doc["scoring"]["bayes_max_points"] = 11.5  # type: ignore[index]
    res = make_ctx(raw, policy(doc)).layer("scoring")
    assert res.fact("score") == 12.5 and "SPAM_SCORE_REJECT" in {s.name for s in res.symbols}


def test_it_ships_a_fitted_score_file() -> None:
    from gateway_milter.layers.scoring import FITTED_SCORE_FILE

    sets = read_score_sets(FITTED_SCORE_FILE)
    assert "BAYES_99" in sets and "BAYES_00" in sets and len(sets) > 50
    assert sets["BAYES_00"][1] < sets["BAYES_50"][1] < sets["BAYES_99"][1] + sets["BAYES_999"][1]


def test_it_counts_fitted_bayes_bands_once(tmp_path: Path, store: MemoryStore) -> None:
    from tests.unit.antispam.test_bayes import SPAM_WORDS, sample, trained

    trained(store, n=30, min_learned=20)
    d = write_rules(tmp_path, "body BAYES_99 eval:check_bayes('0.99', '1.00')\nbody BAYES_999 eval:check_bayes('0.999', '1.00')\n"
                              "body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 1\n")
    scores = tmp_path / "fitted.cf"
    scores.write_text("score BAYES_99 1 1 2 2\nscore BAYES_999 1 1 0.5 0.5\nscore LOCAL_PRIZE 0.5 0.5 0.25 0.25\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(d)]}, "bayes": {"min_learned": 20},
                  "scoring": {"layers": ["rules", "bayes"], "score_file": str(scores), "fitted_scores": True}})
    ctx = make_ctx(sample(SPAM_WORDS, 5000, random.Random(7)) + b" prize", pol)
    res = ctx.layer("scoring")
    assert "BAYES_99" in ctx.layer("rules").fact("hits")  # the rules layer mirrors the band...
    bayes = {s.name for s in ctx.layer("bayes").symbols}
    expected_bayes = 2.0 + (0.5 if "BAYES_999" in bayes else 0.0)
    assert res.fact("parts")["bayes"] == expected_bayes
    assert res.fact("parts")["rules"] == 0.25  # ... but only the bayes layer's band is scored


def test_it_fits_a_weight_for_a_continuous_input() -> None:
    # the log-odds says more than any band: spam around +4, ham around -4, noisy
    rnd = random.Random(8)
    examples = [Example(i % 2 == 0, frozenset({"NOISE"} if rnd.random() < 0.5 else set()),
                        ((LOGODDS, rnd.gauss(4.0 if i % 2 == 0 else -4.0, 3.0)),)) for i in range(400)]
    sf = fit(examples, {"NOISE": 0.0}, l2=0.1, iterations=300)
    assert sf.weights[LOGODDS] > 0.5
    assert sf.logit(frozenset(), ((LOGODDS, 6.0),)) > 0 > sf.logit(frozenset(), ((LOGODDS, -6.0),))
    assert abs(sf.logit(frozenset(), ((LOGODDS, 2.0),)) - sf.bias - 2.0 * sf.weights[LOGODDS]) < 1e-9


def test_it_writes_and_reads_the_bayes_log_odds_weight(tmp_path: Path) -> None:
    p = tmp_path / "scores.cf"
    write_score_file(p, {"A": 1.0}, {"A": 0.5, "BAYES_50": 2.0, LOGODDS: 0.4, LOGODDS_CLIP: 20.0}, "fitted")
    text = p.read_text()
    assert "bayes_logodds 0.4 20\n" in text and "score BAYES_LOGODDS" not in text
    sets = read_score_sets(p)
    assert sets[LOGODDS] == (0.0, 0.4) and sets[LOGODDS_CLIP] == (20.0, 20.0)
    assert logodds_points(sets, 5.0) == 2.0 and abs(logodds_points(sets, 5.0, centre=3.0) - 0.8) < 1e-9
    assert logodds_points(sets, -300.0) == -8.0 and logodds_points(sets, 90.0) == 8.0  # clipped
    assert logodds_points(sets, None) == 0.0 and logodds_points({"A": (1.0, 1.0)}, 5.0) == 0.0


def test_it_adds_the_bayes_log_odds_points_to_the_band(tmp_path: Path, store: MemoryStore) -> None:
    from gateway_milter.layers.bayes import BAND_CENTRES
    from tests.unit.antispam.test_bayes import HAM_WORDS, SPAM_WORDS, sample, trained

    trained(store, n=30, min_learned=20)
    d = write_rules(tmp_path, "body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 1\n")
    scores = tmp_path / "fitted.cf"
    # offset 1.5; each band worth 0.25 x its centre; BAYES_999 adds what lies above BAYES_99's centre
    bands = "".join(f"score {b} 0 0 {1.5 + 0.25 * c:g} {1.5 + 0.25 * c:g}\n" for b, c in BAND_CENTRES.items()
                    if b != "BAYES_999")
    extra = 0.25 * (BAND_CENTRES["BAYES_999"] - BAND_CENTRES["BAYES_99"])
    scores.write_text(f"bayes_logodds 0.25 12\nscore BAYES_999 0 0 {extra:g} {extra:g}\n" + bands)
    doc = {"rules": {"include_default": False, "rule_dirs": [str(d)]}, "bayes": {"min_learned": 20},
           "scoring": {"layers": ["rules", "bayes"], "score_file": str(scores), "fitted_scores": True}}
    spam = make_ctx(sample(SPAM_WORDS, 5000, random.Random(7)), policy(doc))
    assert spam.layer("bayes").fact("logodds") > 12.0
    assert abs(spam.layer("scoring").fact("parts")["bayes"] - (1.5 + 0.25 * 12.0)) < 0.01  # offset + clipped log-odds
    ham = make_ctx(sample(HAM_WORDS, 5001, random.Random(7)), policy(doc))
    assert abs(ham.layer("scoring").fact("parts")["bayes"] - (1.5 - 0.25 * 12.0)) < 0.01
    unsure = make_ctx(msg("x", "meeting agenda viagra lottery"), policy(doc))
    lo = unsure.layer("bayes").fact("logodds")
    assert -12.0 < lo < 12.0
    assert abs(unsure.layer("scoring").fact("parts")["bayes"] - (1.5 + 0.25 * lo)) < 0.01  # whatever the band
    doc["bayes"]["scores"] = {"BAYES_99": 4.0}  # type: ignore[index]
    spam = make_ctx(sample(SPAM_WORDS, 5000, random.Random(7)), policy(doc))
    with_999 = extra if "BAYES_999" in {x.name for x in spam.layer("bayes").symbols} else 0.0
    assert abs(spam.layer("scoring").fact("parts")["bayes"] - (4.0 + with_999)) < 0.01  # set by hand: no log-odds part


def test_it_adds_the_token_model_points_inside_the_bayes_cap(tmp_path: Path, store: MemoryStore) -> None:
    from tests.unit.antispam.test_bayes import HAM_WORDS, SPAM_WORDS, sample, trained

    trained(store, n=30, min_learned=20)
    p = tmp_path / "roundtrip.cf"
    write_score_file(p, {"A": 1.0}, {"A": 0.5, TOKEN_LOGIT: 0.75}, "fitted")
    assert "token_logit 0.75\n" in p.read_text() and read_score_sets(p)[TOKEN_LOGIT] == (0.0, 0.75)
    d = write_rules(tmp_path, "body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 1\n")
    bands = "".join(f"score {b} 0 0 1 1\n" for b in ("BAYES_00", "BAYES_05", "BAYES_20", "BAYES_40", "BAYES_50",
                                                     "BAYES_60", "BAYES_80", "BAYES_95", "BAYES_99", "BAYES_999"))
    scores = tmp_path / "fitted.cf"
    doc = {"rules": {"include_default": False, "rule_dirs": [str(d)]}, "bayes": {"min_learned": 20},
           "scoring": {"layers": ["rules", "bayes"], "score_file": str(scores), "fitted_scores": True,
                       "bayes_max_points": 6.0}}
    parts = {}
    for weight in (0.0, 0.5):
        scores.write_text(bands + (f"token_logit {weight:g}\n" if weight else ""))
        ham = make_ctx(sample(HAM_WORDS, 5001, random.Random(7)), policy(doc))
        tl = ham.layer("bayes").fact("token_logit")
        assert tl < -1.0  # the token model learned these words as ham
        parts[weight] = (ham.layer("scoring").fact("parts")["bayes"], tl)
    assert abs(parts[0.5][0] - parts[0.0][0] - 0.5 * parts[0.5][1]) < 0.01
    scores.write_text(bands + "token_logit 100\n")  # a spam's token points: capped with the rest of Bayes
    spam = make_ctx(sample(SPAM_WORDS, 5000, random.Random(7)), policy(doc))
    assert spam.layer("bayes").fact("token_logit") > 1.0
    assert spam.layer("scoring").fact("parts")["bayes"] == 6.0


def test_it_falls_back_to_the_counts_only_sets_until_the_token_model_is_ready(tmp_path: Path, store: MemoryStore) -> None:
    from gateway_milter.antispam.bayes import weight_key
    from gateway_milter.layers.scoring import COUNTS_ONLY_SCORE_FILE, FITTED_SCORE_FILE
    from tests.unit.antispam.test_bayes import HAM_WORDS, sample, trained

    assert TOKEN_LOGIT in read_score_sets(FITTED_SCORE_FILE) and TOKEN_LOGIT not in read_score_sets(COUNTS_ONLY_SCORE_FILE)
    trained(store, n=30, min_learned=20)
    raw = sample(HAM_WORDS, 5001, random.Random(7))
    doc: dict[str, Any] = {"bayes": {"min_learned": 20, "autolearn": False}, "scoring": {"layers": ["bayes"]}}
    counts_only = dict(doc, scoring={"layers": ["bayes"], "score_file": str(COUNTS_ONLY_SCORE_FILE)})
    ready = make_ctx(raw, policy(doc))
    assert ready.layer("bayes").fact("token_logit") is not None
    expected_without = make_ctx(raw, policy(counts_only)).layer("scoring").fact("score")
    assert ready.layer("scoring").fact("score") != expected_without  # the token model's sets
    store.delete(weight_key("global"))  # counts learned before the token model existed
    late = make_ctx(raw, policy(doc))
    assert late.layer("bayes").fact("probability") is not None and late.layer("bayes").fact("token_logit") is None
    assert late.layer("scoring").fact("score") == expected_without  # the sets fitted without it


def test_it_extrapolates_how_the_bayes_log_odds_grow_with_all_folds_learned() -> None:
    from gateway_milter.antispam.evaluate import logodds_growth

    pairs = [(x, 1.2 * x) for x in (-40.0, -3.0, 0.5, 7.0, 60.0)]  # 3 folds -> 4 folds: 20 % larger
    g = logodds_growth(pairs, 5)
    assert abs(g - 1.25 ** (math.log(1.2) / math.log(4 / 3))) < 1e-9 and 1.0 < g < 1.2  # 4 -> 5 folds: less
    assert logodds_growth([(x, 0.9 * x) for x in (-5.0, 5.0)], 5) == 1.0  # shrinking: no correction
    assert logodds_growth([], 5) == 1.0 and logodds_growth(pairs, 2) == 1.0


def test_autolearn_goes_by_the_fitted_set_made_for_use_without_bayes(tmp_path: Path, store: MemoryStore) -> None:
    # set 0 (without Bayes) says 13 + 3: spam enough to learn, with 3 header points (LOCAL_NOTE);
    # set 2 (with Bayes) says 2 + 3, and BAYES_99 1 more: a total judged spam (6 >= 5)
    doc, raw = _spam_with_a_prize(tmp_path, store, "score LOCAL_PRIZE 13 13 2 2\nscore LOCAL_NOTE 3 3 3 3\n"
                                                   "score BAYES_99 0 0 1 1\nscore BAYES_999 0 0 0 0\n",
                                  "header LOCAL_NOTE Subject =~ /^note /\nscore LOCAL_NOTE 1\n")
    ctx = make_ctx(raw, policy(doc))
    assert ctx.layer("bayes").fact("probability") is not None
    res = ctx.layer("scoring")
    assert res.fact("parts")["rules"] == 5.0 and res.fact("autolearn") == "spam"
    other = tmp_path / "fitted-low.cf"
    other.write_text("score LOCAL_PRIZE 3 3 2 2\nscore LOCAL_NOTE 3 3 3 3\nscore BAYES_99 0 0 1 1\n"
                     "score BAYES_999 0 0 0 0\n")
    doc["scoring"]["score_file"] = str(other)  # type: ignore[index]
    assert make_ctx(raw, policy(doc)).layer("scoring").fact("autolearn") == "no"


def test_the_log_headers_and_sieve_see_the_score_the_thresholds_judged(tmp_path: Path, store: MemoryStore) -> None:
    """With fitted scores the total differs from the sum of the symbols' own scores; the message
    log, X-Bulwark-Result and Sieve's spamtest must all show the total that was judged."""
    from gateway_milter import layers
    from gateway_milter.context import ConnectionInfo
    from gateway_milter.pipeline.transaction import Gateway
    from gateway_milter.policy.provider import StaticPolicyProvider
    from gateway_milter.policy.snapshot import PolicySnapshot
    from gateway_milter.verdict import Action

    d = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6\n")
    scores = tmp_path / "fitted.cf"
    scores.write_text("score LOCAL_SPAMMY 2.5 2.5 1.0 1.0\n")
    settings: dict[str, Any] = {lid: {"mode": "off"} for lid in layers.available()
                                if lid not in ("lists", "direction", "relay", "rules", "scoring")}
    settings |= {"rules": {"include_default": False, "rule_dirs": [str(d)], "use_bayes": False},
                 "scoring": {"layers": ["rules"], "score_file": str(scores), "fitted_scores": True}}
    script = ('require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];\n'
              'if spamtest :value "ge" :comparator "i;ascii-numeric" "6" { fileinto "Quarantine"; }')
    doc = {"settings": settings, "domains": [{"name": "example.com"}], "scripts": [{"name": "hold", "source": script}]}

    class Sink:
        records: list[dict[str, Any]] = []

        def emit(self, record: dict[str, Any]) -> None:
            self.records.append(record)

    class Held:
        def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
            return {**meta, "qid": "q1", "path": "x"}

    sink = Sink()
    gw = Gateway(StaticPolicyProvider(PolicySnapshot.from_document(doc, 1)), Held(), sink)
    ctx = gw.begin(ConnectionInfo(client_ip="203.0.113.9", helo="mail.sender.test", client_name="mail.sender.test"))
    gw.mail(ctx, "alice@sender.test")
    gw.rcpt(ctx, "bob@example.com")
    raw = msg("x", "spammy")
    head, body = raw.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        n, _, v = line.decode().partition(": ")
        ctx.add_header(n, v)
    ctx.body.write(body)
    dec = gw.eom(ctx)
    gw.finish(ctx, dec.action, dec.reply)
    assert ctx.has_symbol("LOCAL_SPAMMY")  # its own score is 6, the fitted one 2.5
    assert dec.action is Action.ACCEPT  # spamtest saw 2.5 (value 3), not 6 (value 7)
    assert ctx.score == 2.5
    assert [r["score"] for r in sink.records] == [2.5]
    status = [e.value for e in dec.header_edits if e.name == "X-Bulwark-Result"]
    assert status and "score=2.50;" in status[0]
