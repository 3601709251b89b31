"""What a local rule can do to the engine: nothing it writes may stop a message (an exception
per message) or hold the process (an expression that runs super-linear), and rules whose hits
count (tflags multiple) count on every path."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam import hsmatch
from gateway_milter.antispam.engine import RuleEngine
from gateway_milter.antispam.sarules import load_rules
from gateway_milter.antispam.saview import message_view
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
