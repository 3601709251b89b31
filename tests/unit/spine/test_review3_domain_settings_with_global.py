"""A domain's layer settings are used merged with the global ones (PolicySnapshot.settings_for);
checked alone, against the defaults, a domain's reject_score of 6 passed while the global
quarantine_score was 8: the document was accepted and published, then every plan for that
domain failed to build (the milter could not load the policy), and the error named
``settings.scoring``, not the domain. The reverse refused a valid domain setting."""

from __future__ import annotations

import pytest

from gateway_milter.layers.base import SettingsError
from gateway_milter.policy.snapshot import PolicySnapshot, validate_document


def doc(global_scoring: dict[str, float], domain_scoring: dict[str, float]) -> dict[str, object]:
    return {"settings": {"scoring": global_scoring},
            "domains": [{"name": "a.example"}, {"name": "b.example", "settings": {"scoring": domain_scoring}}]}


def test_it_refuses_a_domain_threshold_below_the_global_one_it_inherits() -> None:
    with pytest.raises(SettingsError) as e:
        validate_document(doc({"quarantine_score": 8.0, "reject_score": 15.0}, {"reject_score": 6.0}))
    assert e.value.path == "domains[1].settings.scoring.reject_score"
    assert "must not be below quarantine_score" in str(e.value) and "b.example" in str(e.value)


def test_it_accepts_a_domain_threshold_valid_with_the_global_settings() -> None:
    d = doc({"quarantine_score": 3.0, "reject_score": 15.0}, {"reject_score": 4.0})
    validate_document(d)
    s = PolicySnapshot.from_document(d).settings_for("scoring", "b.example")
    assert (s.quarantine_score, s.reject_score) == (3.0, 4.0)
