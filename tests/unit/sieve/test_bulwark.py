"""The vnd.bulwark extension against a real message context and the real lists layer."""

from __future__ import annotations

import pytest

from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve import ExecutionResult, MessageData, compile_script, validate
from gateway_milter.sieve.bulwark import GatewayHooks
from tests.unit.sieve.helpers import make_ctx, only_layers

MSG = b"From: a@sender.test\nSubject: s\n\nbody\n"
SNAP = PolicySnapshot.from_document({
    "settings": only_layers("lists", "size"),
    "domains": [{"name": "example.com"}],
    "lists": [{"list": "block", "kind": "sender", "value": "*@spam.test"},
              {"list": "allow", "kind": "ip", "value": "198.51.100.0/24"}],
})


def run_ctx(src: str, **kw: object) -> tuple[ExecutionResult, object]:
    ctx = make_ctx(SNAP, MSG, **kw)  # type: ignore[arg-type]
    res = compile_script('require ["vnd.bulwark", "fileinto"];\n' + src).execute(
        MessageData.from_context(ctx), hooks=GatewayHooks(ctx))
    assert res.error is None, res.error
    return res, ctx


def boxes(res: ExecutionResult) -> list[str]:
    return [a.args.get("mailbox", a.kind) for a in res.actions]


def test_it_tests_layer_symbols_and_runs_the_layer_once() -> None:
    src = ('if bulwark_symbol :layer "lists" "BLOCKLIST_SENDER" { fileinto "blocked"; }'
           ' if bulwark_symbol :layer "lists" :matches "BLOCK*" { fileinto "again"; }')
    res, ctx = run_ctx(src, mail_from="x@spam.test")
    assert boxes(res) == ["blocked", "again"]
    assert [t.source for t in ctx.trace].count("lists") == 1  # type: ignore[attr-defined]
    res, _ = run_ctx(src, mail_from="x@ok.test")
    assert boxes(res) == []


def test_it_tests_layer_facts() -> None:
    res, _ = run_ctx('if bulwark_fact :layer "lists" "allowlisted" "true" { fileinto "allowed"; }', ip="198.51.100.4")
    assert boxes(res) == ["allowed"]
    res, _ = run_ctx('if bulwark_fact :layer "lists" "allowlisted" "true" { fileinto "allowed"; }', ip="203.0.113.9")
    assert boxes(res) == []


def test_it_tests_the_client_ip() -> None:
    src = ('if bulwark_ip :private { fileinto "private"; } if bulwark_ip :public { fileinto "public"; }'
           ' if bulwark_ip :cidr ["10.0.0.0/8", "2001:db8::/32"] { fileinto "net"; }')
    assert boxes(run_ctx(src, ip="10.1.2.3")[0]) == ["private", "net"]
    assert boxes(run_ctx(src, ip="8.8.8.8")[0]) == ["public"]
    assert boxes(run_ctx(src, ip="::ffff:10.0.0.1")[0]) == ["private", "net"]


def test_it_tests_host_facts_and_lists() -> None:
    src = ('if bulwark_host :matches "helo" "*.sender.test" { fileinto "helo"; }'
           ' if bulwark_list :block "sender" { fileinto "listed"; } if bulwark_list :allow "ip" { fileinto "ip-ok"; }')
    assert boxes(run_ctx(src, mail_from="x@spam.test", ip="198.51.100.1")[0]) == ["helo", "listed", "ip-ok"]


def test_it_compares_scores_as_decimals() -> None:
    src = 'if bulwark_score :atleast "2.5" { fileinto "high"; } if bulwark_score :under "2.5" { fileinto "low"; }'
    res, _ = run_ctx(src)
    assert boxes(res) == ["low"]


def test_it_offers_gateway_actions() -> None:
    res, _ = run_ctx('quarantine :admin "held"; ')
    assert res.actions[0].args == {"queue": "admin", "reason": "held"} and not res.implicit_keep
    res, _ = run_ctx('refuse :code "554" :status "5.7.1" "go away";')
    assert res.actions[0].args == {"code": "554", "status": "5.7.1", "reason": "go away"}


@pytest.mark.parametrize("src,msg", [
    ('require "vnd.bulwark"; refuse :code "450" :status "4.7.1" "x";', "the code must be 5xx"),
    ('require "vnd.bulwark"; refuse :code "450" "x";', "does not fit code 450"),
    ('require "vnd.bulwark"; if bulwark_symbol :layer "nope" "X" { keep; }', 'unknown layer "nope"'),
    ('require "vnd.bulwark"; if bulwark_ip :cidr "not-a-net" { keep; }', "is not an IP network"),
    ('require "vnd.bulwark"; if bulwark_fact "spf" "x" { keep; }', "needs :layer"),
])
def test_it_refuses_invalid_gateway_arguments(src: str, msg: str) -> None:
    errs = validate(src)
    assert errs and msg in errs[0]["message"]
