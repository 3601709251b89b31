"""A domain's scoring thresholds are judged with the global settings they inherit: a domain's
reject_score below the global quarantine_score is refused with the field named (it was saved
and published, and the milter could not build the domain's policy), and one valid with the
global settings is accepted (it was refused, checked against the defaults)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def _put(c: Any, values: dict[str, Any], domain: str | None = "a.example") -> Any:
    q = f"?domain={domain}" if domain else ""
    return c.put(f"/api/layers/scoring/{q}", {"settings": values}, content_type="application/json")


def _published_scoring(domain: str) -> Any:
    from gateway_milter.policy.snapshot import PolicySnapshot
    from webadmin.models import PublishedPolicy

    doc = PublishedPolicy.objects.order_by("-version").first().document
    return PolicySnapshot.from_document(doc).settings_for("scoring", domain)


def test_it_refuses_a_domain_reject_score_below_the_global_quarantine_score(world: World) -> None:
    assert _put(world.client("global_admin"), {"quarantine_score": 8.0, "reject_score": 15.0}, None).status_code == 200
    r = _put(world.client("domain_admin"), {"reject_score": 6.0})
    assert r.status_code == 400, r.content
    assert r.json() == {"settings.scoring.reject_score": ["must not be below quarantine_score"]}
    assert _published_scoring("a.example").reject_score == 15.0


def test_it_accepts_a_domain_reject_score_valid_with_the_global_settings(world: World) -> None:
    assert _put(world.client("global_admin"), {"quarantine_score": 3.0, "reject_score": 15.0}, None).status_code == 200
    for role in ("domain_admin", "global_admin"):
        r = _put(world.client(role), {"reject_score": 4.0})
        assert r.status_code == 200, r.content
    s = _published_scoring("a.example")
    assert (s.quarantine_score, s.reject_score) == (3.0, 4.0)


def test_a_global_change_that_breaks_a_domain_names_the_domain(world: World) -> None:
    assert _put(world.client("domain_admin"), {"reject_score": 6.0}).status_code == 200
    r = _put(world.client("global_admin"), {"quarantine_score": 8.0}, None)
    assert r.status_code == 400, r.content
    [(path, [message])] = r.json().items()
    assert path.endswith(".settings.scoring.reject_score") and "a.example" in message, r.json()
    assert _published_scoring("a.example").quarantine_score == 5.0


def test_an_imported_policy_is_judged_with_the_global_settings(world: World) -> None:
    from gateway_milter.layers.base import SettingsError
    from webadmin.services import do_import_policy

    def doc(reject: float) -> dict[str, Any]:
        return {"settings": {"scoring": {"quarantine_score": 3.0, "reject_score": 15.0}},
                "domains": [{"name": "a.example", "settings": {"scoring": {"reject_score": reject}}}]}

    do_import_policy(doc(4.0))
    assert _published_scoring("a.example").reject_score == 4.0
    with pytest.raises(SettingsError):
        do_import_policy(doc(2.0))
