"""Spam-trap mail is learned in the trap's domain scope; only a trap of the global settings
teaches ``global``, the scope every tenant reads (docs/layers/spamtrap.md)."""

from __future__ import annotations

from typing import Any

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.layers.spamtrap import learning_scopes
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg


def _policy(glob: dict[str, Any], a_settings: dict[str, Any]) -> PolicySnapshot:
    return PolicySnapshot.from_document({"settings": {"bayes": {"min_learned": 1}, **glob},
                                         "domains": [{"name": "a.test", "settings": a_settings}, "b.test"]})


def test_it_learns_a_domains_own_trap_in_that_domains_scope_only(store: MemoryStore) -> None:
    pol = _policy({}, {"spamtrap": {"addresses": ["trap@a.test"]}})
    ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("trap@a.test",))
    assert learning_scopes(ctx, ["trap@a.test"]) == ["dom:a.test"]
    assert ctx.layer("spamtrap").fact("learned") is True
    from gateway_milter.antispam.learner import learner

    assert learner().flush(timeout=10.0)
    assert BayesClassifier(store).stats("dom:a.test")["spam_learned"] == 1
    assert BayesClassifier(store).stats("global")["spam_learned"] == 0


def test_it_learns_a_global_trap_in_global_as_before() -> None:
    pol = _policy({"spamtrap": {"addresses": ["trap@"]}}, {})
    ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("trap@b.test",))
    assert learning_scopes(ctx, ["trap@b.test"]) == ["global"]
    # a domain listing the global trap again changes nothing
    pol = _policy({"spamtrap": {"addresses": ["trap@"]}}, {"spamtrap": {"addresses": ["trap@", "spam@a.test"]}})
    ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("trap@a.test", "spam@a.test"))
    assert learning_scopes(ctx, ["trap@a.test", "spam@a.test"]) == ["dom:a.test", "global"]


def test_it_learns_nothing_from_a_domain_trap_when_the_domain_reads_no_scope_of_its_own() -> None:
    pol = _policy({}, {"spamtrap": {"addresses": ["trap@a.test"]}, "bayes": {"per_domain": False}})
    ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("trap@a.test",))
    assert learning_scopes(ctx, ["trap@a.test"]) == []
    res = ctx.layer("spamtrap")
    assert res.has("SPAMTRAP") and res.fact("learned") is False
