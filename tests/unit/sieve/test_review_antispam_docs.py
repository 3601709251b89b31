"""The anti-spam/anti-virus Sieve snippets of docs/layers/*.md do what the text around them says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway_milter.layers.base import LayerFindings
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve.policy import SievePolicyEngine
from gateway_milter.verdict import Action
from tests.unit.sieve.helpers import make_ctx, only_layers

DOCS = Path(__file__).resolve().parents[3] / "docs" / "layers"
MSG = b"From: Alice <alice@sender.test>\nTo: user@example.com\nSubject: Hello\n\nA body.\n"


def test_the_antivirus_signature_example_reads_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.layers.antivirus import AntivirusLayer

    text = " ".join((DOCS / "antivirus.md").read_text().split())
    test = re.search(r'`(bulwark_fact :layer "antivirus" "?[^`]*)`', text)
    assert test is not None
    found = LayerFindings({"verdict": "infected", "signature": "Eicar-Test-Signature", "virustest": 5})
    monkeypatch.setattr(AntivirusLayer, "check", lambda self, ctx, settings: found)
    script = f'require ["vnd.bulwark", "fileinto"];\nif {test.group(1)} {{ fileinto "Junk"; }}\n'
    s = PolicySnapshot.from_document({"gateway": {"hostname": "mx.example.com"}, "settings": only_layers("antivirus"),
                                      "domains": [{"name": "example.com"}],
                                      "scripts": [{"name": "sig", "position": "before", "source": script}]})
    o = SievePolicyEngine(s).message(make_ctx(s, MSG))
    assert o.action is Action.QUARANTINE, script


def test_the_fromscreen_imitates_example_matches_an_imitated_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.layers.fromscreen import FromScreenLayer

    text = " ".join((DOCS / "fromscreen.md").read_text().split())
    test = re.search(r'`(bulwark_fact :layer "fromscreen" [^`]*"imitates"[^`]*)`', text)
    assert test is not None
    found = LayerFindings({"from_domain": "examp1e.com", "imitates": "example.com", "aligned": False})
    monkeypatch.setattr(FromScreenLayer, "check", lambda self, ctx, settings: found)
    script = f'require ["vnd.bulwark", "fileinto"];\nif {test.group(1)} {{ fileinto "Junk"; }}\n'
    s = PolicySnapshot.from_document({"gateway": {"hostname": "mx.example.com"}, "settings": only_layers("fromscreen"),
                                      "domains": [{"name": "example.com"}],
                                      "scripts": [{"name": "imit", "position": "before", "source": script}]})
    o = SievePolicyEngine(s).message(make_ctx(s, MSG))
    assert o.action is Action.QUARANTINE, script
