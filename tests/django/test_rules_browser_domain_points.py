"""Security → Heuristic rules (and ``/api/antispam/rules/``) listed every administrator the
points of the global scoring settings, though a domain may set its own ``fitted_scores``: a domain
administrator read points their mail does not get. The points are now their domain's (a domain
administrator never sees the global ones; a global administrator picks a domain or the global
settings)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World
from tests.django.test_scan_tool import quick_policy

pytestmark = pytest.mark.django_db


def _rules(c: Any, **params: str) -> dict[str, Any]:
    for _ in range(600):
        r = c.get("/api/antispam/rules/", {"q": "BANKING_LAWS", **params})
        if r.status_code == 200:
            out: dict[str, Any] = r.json()
            return out
        assert r.status_code == 503, r.content
        time.sleep(0.05)
    raise AssertionError("the rule set was not built")


def _row(doc: dict[str, Any]) -> dict[str, Any]:
    return next(x for x in doc["rules"] if x["name"] == "BANKING_LAWS")


def test_the_points_are_those_of_the_readers_domain(world: World, store: MemoryStore) -> None:
    from webadmin.services import do_set_layer_settings

    quick_policy(world.data_dir)
    rules = world.data_dir / "rules" / "local.cf"
    rules.write_text(rules.read_text() + "body BANKING_LAWS /bankinglaw/\n")  # (a fitted rule, no score line)
    do_set_layer_settings("rules", {"include_default": False, "rule_dirs": [str(rules.parent)]})
    da = world.client("domain_admin", "a")
    r = da.put("/api/layers/scoring/?domain=a.example", {"settings": {"fitted_scores": False}},
               content_type="application/json")
    assert r.status_code == 200, r.content
    glob = _row(_rules(world.client("global_admin")))
    assert glob["origin"] == "fitted" and glob["points"] != 1.0
    mine = _rules(da)
    assert mine["points_for_domain"] == "a.example"
    assert (_row(mine)["origin"], _row(mine)["points"]) == ("rule files", 1.0)  # fitted scores off there
    # a domain administrator cannot read another domain's (or the global) points by asking
    assert _rules(da, domain="b.example")["points_for_domain"] == "a.example"
    # a global administrator picks the domain
    picked = _rules(world.client("global_admin"), domain="A.example")
    assert picked["points_for_domain"] == "a.example" and _row(picked)["points"] == 1.0
    # the page: the domain's points and the choice of domain
    page = world.client("global_admin").get("/security/antispam/rules/", {"q": "BANKING_LAWS", "domain": "a.example"})
    assert page.status_code == 200 and '<option value="a.example" selected>' in page.content.decode()
