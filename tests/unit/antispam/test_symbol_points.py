"""What each symbol added to the total (the scoring layer's fact ``points``, the message log's
``points``): the fitted score it counted with, not the rule file's score it carries; 0 for a
layer the total does not count and for exempt mail; the Bayes band with the whole Bayes share.
The symbols' points add up to the total the thresholds judged."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.layers.scoring import _symbol_points, counted_points
from gateway_milter.pipeline.transaction import _symbol_records
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Symbol
from tests.unit.antispam.helpers import make_ctx, msg, policy


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    from gateway_milter.antispam import sarules

    monkeypatch.setattr(sarules, "default_rule_dirs", lambda sa_update=False: [])  # these rules alone
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "local.cf").write_text("body PIZZA /pizza/\nscore PIZZA 1\nbody TONIGHT /tonight/\nscore TONIGHT 2\n")
    scores = tmp_path / "fitted.cf"
    # (set 0, without Bayes, is the one these messages use: no Bayes is learned)
    scores.write_text("score PIZZA 0.5 0.5 0.4 0.4\nscore TONIGHT 3.25 3.25 3 3\n")
    return {"rules": {"rule_dirs": [str(rules)]},
            "scoring": {"layers": ["rules"], "score_file": str(scores), "fitted_scores": True}}


def test_each_symbol_counts_its_fitted_score_and_they_add_up_to_the_total(tmp_path: Path, store: MemoryStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(msg("menu", "a pizza tonight"), policy(_setup(tmp_path, monkeypatch)))
    scoring = ctx.layer("scoring")
    assert scoring.fact("score") == 3.75
    rules = ctx.layer("rules")
    assert {s.name: s.score for s in rules.symbols} == {"PIZZA": 1.0, "TONIGHT": 2.0}  # their own scores
    counted = counted_points(ctx)
    assert counted is not None
    assert {s.name: counted[id(s)] for s in rules.symbols} == {"PIZZA": 0.5, "TONIGHT": 3.25}
    # the log's records: the own score and the points, which sum to the judged total
    ctx.symbols.append(Symbol("DKIM_NONE_LIKE", 2.0, "a layer the total does not count", "dkim"))
    recs = {r["name"]: r for r in _symbol_records(ctx)}
    assert recs["PIZZA"]["score"] == 1.0 and recs["PIZZA"]["points"] == 0.5
    assert recs["TONIGHT"]["score"] == 2.0 and recs["TONIGHT"]["points"] == 3.25
    assert recs["DKIM_NONE_LIKE"]["points"] == 0.0
    assert round(sum(r["points"] for r in recs.values()), 3) == ctx.score == 3.75


def test_exempt_mail_counts_no_points(tmp_path: Path, store: MemoryStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(msg("menu", "a pizza tonight"), policy(_setup(tmp_path, monkeypatch)), auth="alice")
    ctx.layer("rules")
    assert ctx.layer("scoring").fact("exempt")
    recs = _symbol_records(ctx)
    assert {r["name"] for r in recs} >= {"PIZZA", "TONIGHT", "SCORING_EXEMPT"}
    assert all(r["points"] == 0.0 for r in recs)


def test_no_points_before_a_total_was_judged(tmp_path: Path, store: MemoryStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(msg("menu", "a pizza tonight"), policy(_setup(tmp_path, monkeypatch)))
    ctx.layer("rules")
    assert counted_points(ctx) is None
    assert all("points" not in r for r in _symbol_records(ctx))


def test_the_bayes_band_carries_the_bayes_share_and_sender_symbols_their_own() -> None:
    syms = [Symbol("BAYES_99", 3.5, "", "bayes"), Symbol("BAYES_999", 0.2, "", "bayes"),
            Symbol("BAYES_SENDER_HAM", -1.0, "", "bayes")]
    fitted = {"BAYES_99": (0.0, 2.0), "BAYES_999": (0.0, 0.5), "BAYES_SENDER_HAM": (0.0, -0.75)}
    # the share: the bands' fitted scores plus the log-odds and the token model, capped at 7
    pts = _symbol_points("bayes", syms, fitted, 1, 6.25)
    assert pts == [6.5, 0.5, -0.75] and round(sum(pts), 3) == 6.25
    # without fitted scores: each symbol's own score, the band again taking what is left
    assert _symbol_points("bayes", syms, {}, 1, 2.7) == [3.5, 0.2, -1.0]
    assert _symbol_points("rules", [Symbol("A", 1.0, "", "rules")], {"A": (0.25, 0.5)}, 1, 0.5) == [0.5]


def _sieve(ctx: object, test: str) -> bool:
    from gateway_milter.sieve import MessageData, compile_script
    from gateway_milter.sieve.bulwark import GatewayHooks

    res = compile_script(f'require ["vnd.bulwark", "fileinto"];\nif {test} {{ fileinto "yes"; }}').execute(
        MessageData.from_context(ctx), hooks=GatewayHooks(ctx))
    assert res.error is None, res.error
    return any(a.args.get("mailbox") == "yes" for a in res.actions)


def test_bulwark_score_of_a_scored_layer_compares_what_it_added_to_the_total(
        tmp_path: Path, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # own scores 1 + 2 = 3; counted 0.5 + 3.25 = 3.75
    pol = policy(_setup(tmp_path, monkeypatch))
    ctx = make_ctx(msg("menu", "a pizza tonight"), pol)
    assert _sieve(ctx, 'bulwark_score :layer "rules" :atleast "3.75"')
    assert not _sieve(ctx, 'bulwark_score :layer "rules" :under "3.5"')
    # exempt mail: the layer added nothing
    ctx = make_ctx(msg("menu", "a pizza tonight"), pol, auth="alice")
    assert _sieve(ctx, 'bulwark_score :layer "rules" :under "0.5"')


def test_bulwark_score_of_a_layer_the_total_does_not_count_compares_its_own_scores(
        tmp_path: Path, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _setup(tmp_path, monkeypatch)
    doc["scoring"] = {**doc["scoring"], "layers": ["bayes"]}  # type: ignore[dict-item]
    ctx = make_ctx(msg("menu", "a pizza tonight"), policy(doc))
    assert _sieve(ctx, 'bulwark_score :layer "rules" :atleast "3"')
    assert not _sieve(ctx, 'bulwark_score :layer "rules" :atleast "3.1"')
