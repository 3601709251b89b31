"""What a local rule can do to the engine: nothing it writes may stop a message (an exception
per message) or hold the process (an expression that runs super-linear), and rules whose hits
count (tflags multiple) count on every path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway_milter.antispam import hsmatch
from gateway_milter.antispam.engine import RuleEngine
from gateway_milter.antispam.sarules import load_rules
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.rules import local_rules_problems
from tests.unit.antispam.helpers import make_ctx, msg, write_rules


def _engine(tmp_path: Path, rules: str) -> RuleEngine:
    return RuleEngine(load_rules([write_rules(tmp_path, rules)]))


def test_an_eval_argument_regex_that_does_not_compile_is_listed_at_load(tmp_path: Path) -> None:
    eng = _engine(tmp_path, "freemail_domains sender.test\n"
                            "header LOCAL_F eval:check_freemail_from('(unclosed')\nscore LOCAL_F 1\n"
                            "header LOCAL_H eval:check_freemail_header('From', 'x[')\nscore LOCAL_H 1\n"
                            "header LOCAL_OK eval:check_freemail_header('From', '^alice@')\nscore LOCAL_OK 1\n")
    assert "LOCAL_F" in eng.unsupported and "does not compile" in eng.unsupported["LOCAL_F"]
    assert "LOCAL_H" in eng.unsupported
    # the message the rules would have deferred runs, and a good expression still hits
    hits = {h.name for h in eng.run(message_view(make_ctx(msg()))).hits}
    assert hits == {"LOCAL_OK"}


def test_a_header_rule_with_tflags_multiple_counts_its_matches(tmp_path: Path) -> None:
    # SpamAssassin counts each match of a header rule with tflags multiple, up to maxhits
    # (Debian: meta __MANY_HDRS_LCASE __HDRS_LCASE > 1, __HDRS_LCASE multiple maxhits=3)
    eng = _engine(tmp_path, "header __LOCAL_O Subject =~ /o/\ntflags __LOCAL_O multiple maxhits=3\n"
                            "meta LOCAL_MANY_O __LOCAL_O > 1\nscore LOCAL_MANY_O 1\n"
                            "meta LOCAL_O3 __LOCAL_O == 3\nscore LOCAL_O3 1\n"
                            "header __LOCAL_X Subject =~ /x/\ntflags __LOCAL_X multiple\n"
                            "meta LOCAL_ONE_X __LOCAL_X == 1\nscore LOCAL_ONE_X 1\n"
                            "meta LOCAL_MANY_X (__LOCAL_X + __LOCAL_O + __LOCAL_X) > 3\nscore LOCAL_MANY_X 1\n"
                            "mimeheader __LOCAL_MT Content-Type =~ /t/\ntflags __LOCAL_MT multiple maxhits=2\n"
                            "meta LOCAL_MT __LOCAL_MT > 1\nscore LOCAL_MT 1\n")
    for lazy in (True, False):
        got = eng.run(message_view(make_ctx(msg(subject="foo boo xox"))), lazy=lazy)
        assert got.values["__LOCAL_O"] == 3 and got.values["__LOCAL_X"] == 2
        assert {h.name for h in got.hits} == {"LOCAL_MANY_O", "LOCAL_O3", "LOCAL_MANY_X", "LOCAL_MT"}
        one = eng.run(message_view(make_ctx(msg(subject="xo"))), lazy=lazy)
        assert {h.name for h in one.hits} == {"LOCAL_ONE_X", "LOCAL_MT"}


@pytest.mark.skipif(not hsmatch.available(), reason="the hyperscan package is not installed")
def test_header_rules_with_tflags_multiple_count_the_same_after_a_hyperscan_scan(tmp_path: Path) -> None:
    # ALL and a header with HS_HEADER_MIN_RULES rules are scanned; an absent header's value is
    # known at load, its count too
    text = ("header __LOCAL_LC ALL =~ /^(?:from|subject|to):/mi\ntflags __LOCAL_LC multiple maxhits=3\n"
            "meta LOCAL_LC __LOCAL_LC > 1\nscore LOCAL_LC 1\n"
            "header __LOCAL_U X-Nope =~ /a/ [if-unset: aaaa]\ntflags __LOCAL_U multiple maxhits=3\n"
            "meta LOCAL_U __LOCAL_U == 3\nscore LOCAL_U 1\n"
            + "".join(f"header LOCAL_N{i} X-Nope =~ /n{i}/\nscore LOCAL_N{i} 1\n" for i in range(4)))
    eng = RuleEngine(load_rules([write_rules(tmp_path, text)]), hs_cache=tmp_path / "cache")
    assert eng.hyperscan(None) is not None
    view = message_view(make_ctx(msg(headers="from: x@sender.test\r\nsubject: two\r\n")))
    for got in (eng.run(view), eng.run(view, lazy=False)):
        assert got.values["__LOCAL_LC"] == 3 and got.values["__LOCAL_U"] == 3
        assert {h.name for h in got.hits} == {"LOCAL_LC", "LOCAL_U"}


ROOT = Path(__file__).resolve().parents[3]


def _run_alone(rules_dir: Path, body: str) -> None:
    """One message through an engine of the rules, in a process of its own: Python's re holds
    the GIL for a whole search, so a search without end could not be interrupted here."""
    code = textwrap.dedent(f"""
        from pathlib import Path
        from gateway_milter.antispam.engine import RuleEngine
        from gateway_milter.antispam.sarules import load_rules
        from gateway_milter.antispam.saview import message_view
        from tests.unit.antispam.helpers import make_ctx, msg
        eng = RuleEngine(load_rules([Path({str(rules_dir)!r})]))
        eng.run(message_view(make_ctx(msg(subject={body!r}, body={body!r}))))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, timeout=20, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("one message took more than 20 s (the rules layer's budget is 10 s)")


def test_a_local_rule_with_a_repeat_inside_a_repeat_runs_in_linear_time(tmp_path: Path) -> None:
    text = ("body LOCAL_BT /(a|aa)+b/\nscore LOCAL_BT 1\nbody LOCAL_BTE /^(a|aa)+$/\nscore LOCAL_BTE 1\n"
            "header LOCAL_HBTE Subject =~ /^(a|aa)+$/\nscore LOCAL_HBTE 1\n"
            "header LOCAL_HBT Subject =~ /^(?:a+a)+c/\nscore LOCAL_HBT 1\n"
            "body __LOCAL_CNT /(?:x|xy)+z/\ntflags __LOCAL_CNT multiple maxhits=5\n"
            "meta LOCAL_CNT __LOCAL_CNT > 2\nscore LOCAL_CNT 1\n")
    d = write_rules(tmp_path, text)
    _run_alone(d, "a" * 60 + "c")
    # run by RE2, with the same hits
    rs = load_rules([d])
    assert {"LOCAL_BT", "LOCAL_BTE", "LOCAL_HBT", "LOCAL_HBTE", "__LOCAL_CNT"} <= set(rs.rules) and not rs.unsupported
    eng = RuleEngine(rs)
    for lazy in (True, False):
        got = eng.run(message_view(make_ctx(msg(subject="aaac", body="caaab xz xyz xxz xyxz"))), lazy=lazy)
        assert {h.name for h in got.hits} == {"LOCAL_BT", "LOCAL_HBT", "LOCAL_CNT"}
        assert got.values["__LOCAL_CNT"] == 4


def test_a_local_rule_with_a_repeat_inside_a_repeat_that_re2_cannot_run_is_listed(tmp_path: Path) -> None:
    # (look-behind, a back-reference: RE2 has neither)
    text = "body LOCAL_BT /(?<=x)(a|aa)+b/\nscore LOCAL_BT 1\nbody LOCAL_LA /(\\w)(?:\\w+\\s?)+\\1/\nscore LOCAL_LA 1\n"
    d = write_rules(tmp_path, text + "body LOCAL_OK /a+/\nscore LOCAL_OK 1\n")
    _run_alone(d, "a" * 60 + "b")
    rs = load_rules([d])
    assert set(rs.unsupported) == {"LOCAL_BT", "LOCAL_LA"} and "LOCAL_OK" in rs.rules
    assert "exponential time" in rs.unsupported["LOCAL_BT"]
    _names, problems = local_rules_problems(text)
    assert [p.line for p in problems] == [1, 3] and all("exponential time" in p.message for p in problems)


def test_the_stock_rules_keep_their_own_expressions() -> None:
    from gateway_milter.antispam.re2filter import LinearPattern

    rs = load_rules()
    assert not any(isinstance(r.pattern.compiled, LinearPattern) for r in rs.rules.values() if r.pattern is not None)
    assert not any("exponential time" in why for why in rs.unsupported.values())


def test_a_local_rule_with_a_chain_of_overlapping_repeats_runs_in_linear_time(tmp_path: Path) -> None:
    """``\\w+\\s*\\w+\\s*\\w+\\s*\\w+ dollars`` shares a run of word characters among four repeats in
    every way, from every start: 400 characters took 124 s in Python's ``re`` (SpamAssassin's
    Perl 0.2 s). Such a rule is run by RE2, or listed when RE2 cannot take it (a look-ahead); so
    is a bounded repeat over something optional (``(?:x?){30}``)."""
    text = ("body LOCAL_POLY /\\w+\\s*\\w+\\s*\\w+\\s*\\w+ dollars/i\nscore LOCAL_POLY 1\n"
            "body LOCAL_POLY_LA /\\w+\\s*\\w+\\s*\\w+\\s*\\w+ dollars(?!\\w)/i\nscore LOCAL_POLY_LA 1\n"
            "body LOCAL_OPT /(?:x?){30}x{30}y/\nscore LOCAL_OPT 1\n"
            "body LOCAL_FINE /buy\\s+cheap\\s+\\w+/\nscore LOCAL_FINE 1\n")
    d = write_rules(tmp_path, text)
    _run_alone(d, "x" * 2000)
    rs = load_rules([d])
    assert set(rs.unsupported) == {"LOCAL_POLY_LA"} and "high power" in rs.unsupported["LOCAL_POLY_LA"]
    from gateway_milter.antispam.re2filter import LinearPattern

    kinds = {n: isinstance(rs.rules[n].pattern.compiled, LinearPattern) for n in ("LOCAL_POLY", "LOCAL_OPT", "LOCAL_FINE")}
    assert kinds == {"LOCAL_POLY": True, "LOCAL_OPT": True, "LOCAL_FINE": False}
    got = RuleEngine(rs).run(message_view(make_ctx(msg(subject="hi", body="send us ten thousand dollars buy cheap pills"))))
    assert {h.name for h in got.hits} == {"LOCAL_POLY", "LOCAL_FINE"}
