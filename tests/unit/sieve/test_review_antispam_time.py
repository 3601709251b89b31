"""spamtest / virustest run the scoring and antivirus layers when no script asked them before:
the time those layers take (DNS answers, the rule set, a clamd scan) must not count against the
policy's 0.5 s limit, as it does not for the vnd.bulwark tests (bulwark.GatewayHooks.layer)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway_milter.layers.base import LayerFindings
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve.policy import SievePolicyEngine
from gateway_milter.verdict import Action
from tests.unit.sieve.helpers import make_ctx, only_layers

MSG = b"From: Alice <alice@sender.test>\nTo: user@example.com\nSubject: Hello\n\nA body.\n"
SLOW_S = 0.7  # over Limits.cpu_seconds (0.5)


def _snap(keep: str, script: str) -> PolicySnapshot:
    return PolicySnapshot.from_document({
        "gateway": {"hostname": "mx.example.com"},
        "settings": only_layers(keep),
        "domains": [{"name": "example.com"}],
        # before the layers' system scripts: the test itself runs the layer
        "scripts": [{"name": "a", "position": "before", "source": script}],
    })


def test_it_does_not_count_the_scoring_time_against_the_script_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.layers.scoring import ScoringLayer

    def slow(self: Any, ctx: Any, settings: Any) -> LayerFindings:
        time.sleep(SLOW_S)  # DNS lookups of dnsbl/uribl, the rules, Bayes
        return LayerFindings({"score": 9.0, "required": 5.0})

    monkeypatch.setattr(ScoringLayer, "check", slow)
    s = _snap("scoring", 'require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];\n'
                         'if spamtest :value "ge" :comparator "i;ascii-numeric" "8" { fileinto "Junk"; }\n'
                         'if header :contains "subject" "nothing" { keep; }\n')
    o = SievePolicyEngine(s).message(make_ctx(s, MSG))
    assert o.action is Action.QUARANTINE, o


def test_it_does_not_count_the_antivirus_time_against_the_script_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.layers.antivirus import AntivirusLayer

    def slow(self: Any, ctx: Any, settings: Any) -> LayerFindings:
        time.sleep(SLOW_S)  # a clamd scan of a large message
        return LayerFindings({"verdict": "infected", "virustest": 5})

    monkeypatch.setattr(AntivirusLayer, "check", slow)
    s = _snap("antivirus", 'require ["virustest", "relational", "comparator-i;ascii-numeric", "fileinto"];\n'
                           'if virustest :value "eq" :comparator "i;ascii-numeric" "5" { fileinto "Junk"; }\n'
                           'if header :contains "subject" "nothing" { keep; }\n')
    o = SievePolicyEngine(s).message(make_ctx(s, MSG))
    assert o.action is Action.QUARANTINE, o
