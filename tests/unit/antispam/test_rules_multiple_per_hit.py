"""A rule with ``tflags multiple`` scores at each hit, up to maxhits, as SpamAssassin adds its
score and names the rule at each hit (PerMsgStatus::got_hit): ``spamassassin -t`` on three
GUID lines gives ``score=3.0`` and ``tests=...,SCC_SPECIAL_GUID,SCC_SPECIAL_GUID,SCC_SPECIAL_GUID``.
Before, the rule's score counted once, whatever the number of hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.engine import engine_for
from gateway_milter.antispam.saview import message_view
from gateway_milter.store.memory import MemoryStore
from gateway_milter.transforms.spamheaders import report_text
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

RULES = """
body   LOCAL_LOTTERY  /lottery/i
tflags LOCAL_LOTTERY  multiple maxhits=3
score  LOCAL_LOTTERY  1.5
body   LOCAL_ONCE     /lottery/i
score  LOCAL_ONCE     0.25
meta   LOCAL_META     LOCAL_LOTTERY > 1
tflags LOCAL_META     multiple
score  LOCAL_META     0.5
"""


def test_the_engine_counts_the_score_per_hit_up_to_maxhits(tmp_path: Path) -> None:
    eng = engine_for((str(write_rules(tmp_path, RULES)),), 2, include_default=False)
    res = eng.run(message_view(make_ctx(msg("x", "lottery lottery lottery lottery lottery"))))
    hits = {h.name: (h.count, h.times) for h in res.hits}
    # the plain rule once, the meta once (its value is 0 or 1, multiple or not)
    assert hits == {"LOCAL_LOTTERY": (3, 3), "LOCAL_ONCE": (1, 1), "LOCAL_META": (1, 1)}
    assert res.score == pytest.approx(3 * 1.5 + 0.25 + 0.5)
    two = eng.run(message_view(make_ctx(msg("x", "lottery, and one more lottery"))))
    assert two.score == pytest.approx(2 * 1.5 + 0.25 + 0.5)


def _scored(tmp_path: Path, rules: str, body: str, **scoring: object) -> object:
    d = write_rules(tmp_path, rules)
    doc = {"rules": {"rule_dirs": [str(d)], "include_default": False}, "scoring": {"layers": ["rules"], **scoring}}
    return make_ctx(msg("x", body), policy(doc))


def test_the_total_the_tests_and_the_report_count_each_hit(tmp_path: Path, store: MemoryStore) -> None:
    ctx = _scored(tmp_path, RULES, "lottery lottery lottery lottery", fitted_scores=False)
    res = ctx.layer("scoring")
    assert res.fact("parts")["rules"] == pytest.approx(3 * 1.5 + 0.25 + 0.5)
    assert res.fact("tests").count("LOCAL_LOTTERY") == 3 and res.fact("tests").count("LOCAL_ONCE") == 1
    assert res.fact("points")["rules"].count(1.5) == 3
    assert report_text(ctx).count("LOCAL_LOTTERY") == 3


def test_a_fitted_score_counts_per_hit_too(tmp_path: Path, store: MemoryStore,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.antispam import engine, sarules
    from gateway_milter.layers.scoring import FITTED_SCORE_FILE, score_sets

    monkeypatch.setattr(engine, "_checked", {})  # (the stock set below, not one built before)

    fitted = score_sets(FITTED_SCORE_FILE)["BANG_GUAR"][0]
    assert fitted not in (0.0, 0.001)
    stock = tmp_path / "stock"
    stock.mkdir()
    (stock / "x.cf").write_text("body BANG_GUAR /pizza/\ntflags BANG_GUAR multiple\nscore BANG_GUAR 0.001\n")
    monkeypatch.setattr(sarules, "default_rule_dirs", lambda sa_update=False: [stock])
    doc = {"rules": {"rule_dirs": [], "include_default": True}, "scoring": {"layers": ["rules"]}}
    ctx = make_ctx(msg("menu", "a pizza tonight, or a pizza tomorrow"), policy(doc))
    assert ctx.layer("scoring").fact("parts")["rules"] == pytest.approx(round(2 * fitted, 3))


DEBIAN = Path("/usr/share/spamassassin/72_active.cf")


@pytest.mark.skipif(not DEBIAN.exists(), reason=f"{DEBIAN} absent (Debian's spamassassin package)")
def test_debian_scc_special_guid_scores_each_guid_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one scored rule of Debian's set with tflags multiple: 1 point per GUID line (up to 15),
    as ``spamassassin -t`` scores it."""
    from gateway_milter.antispam import engine

    monkeypatch.setattr(engine, "_checked", {})  # (not the stock set another test put in its place)
    guids = "".join(f"{i}2345678-1234-ab{c}-ab{c}-123456789012\n" for i, c in zip("123", "cde", strict=True))
    raw = msg("ids", "Hello there, these are some ids:\n" + guids + "bye\n")
    eng = engine_for((), 2, include_default=True)
    hit = {h.name: h for h in eng.run(message_view(make_ctx(raw))).hits}["SCC_SPECIAL_GUID"]
    assert (hit.count, hit.times, hit.score) == (3, 3, 1.0)
