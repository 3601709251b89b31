"""The milter worker's start: the rule engines the published settings name are built in the
background, one per distinct rule set, as many as a process keeps."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.antispam.engine import MAX_ENGINES
from gateway_milter.front import worker
from gateway_milter.layers import rules
from gateway_milter.policy.snapshot import PolicySnapshot


class Gateway:
    def __init__(self, snap: PolicySnapshot) -> None:
        self.policy = self
        self.snap = snap

    def current(self) -> PolicySnapshot:
        return self.snap


def warmed(monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any]) -> list[rules.RulesSettings]:
    got: list[rules.RulesSettings] = []
    monkeypatch.setattr(rules, "warm_up", lambda settings=None, wait=False: got.append(settings))
    worker._warm_up(Gateway(PolicySnapshot.from_document(doc)))
    return got


def test_one_rule_set_for_all_domains_is_warmed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    got = warmed(monkeypatch, {"domains": ["a.example", "b.example"]})
    assert len(got) == 1 and got[0].include_default


def test_each_distinct_domain_rule_set_is_warmed(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"domains": ["a.example",
                       {"name": "b.example", "settings": {"rules": {"skip_rules": ["X"]}}},
                       {"name": "c.example", "settings": {"rules": {"skip_rules": ["X"]}}},
                       {"name": "d.example", "settings": {"rules": {"score_set": 0}}}]}
    got = warmed(monkeypatch, doc)
    assert [(s.skip_rules, s.score_set) for s in got] == [((), 2), (("X",), 2), ((), 0)]


def test_no_more_than_a_process_keeps_and_none_where_the_layer_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"domains": [{"name": f"d{i}.example", "settings": {"rules": {"skip_rules": [f"R{i}"]}}}
                       for i in range(MAX_ENGINES + 2)]}
    assert len(warmed(monkeypatch, doc)) == MAX_ENGINES
    assert warmed(monkeypatch, {"settings": {"rules": {"mode": "off"}}, "domains": ["a.example"]}) == []
