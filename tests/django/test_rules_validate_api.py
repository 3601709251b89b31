"""``POST /api/rules/validate/``: the rules page's editor checks the administrator's rules as
they are typed, each problem with its line; global admins only (the setting is global-only;
others get 404, docs/decisions/0050);
bad calls get 400 and change nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db
URL = "/api/rules/validate/"


def _post(c: Any, source: Any) -> Any:
    return c.post(URL, data=json.dumps({"source": source}), content_type="application/json")


def test_it_lists_errors_and_warnings_by_line(world: World) -> None:
    c = world.client("global_admin")
    r = _post(c, "body LOCAL_A /a(/\r\nrequired_score 4\r\nbody LOCAL_OK /ok/\r\n")
    assert r.status_code == 200, r.content
    body = r.json()
    assert [(e["line"], e["message"].split(":")[0]) for e in body["errors"]] == [(1, "LOCAL_A would not run")]
    assert [(w["line"], w["severity"]) for w in body["warnings"]] == [(2, "warning")]
    assert body["rules"] == 2
    ok = _post(c, "body LOCAL_OK /ok/\nscore LOCAL_OK 1\n").json()
    assert ok == {"errors": [], "warnings": [], "rules": 1}
    from webadmin.services import current_snapshot

    assert current_snapshot().settings_for("rules").local_rules == ""  # nothing saved


@pytest.mark.parametrize("source", [None, 5, ["body A /a/"], "# " + "x" * 200_001])  # (NUL, surrogates: test_api_text_only)
def test_bad_calls_get_400(world: World, source: Any) -> None:
    r = _post(world.client("global_admin"), source)
    assert r.status_code == 400 and "source" in r.json(), r.content


@pytest.mark.parametrize("role", ["domain_admin", "user"])
def test_only_global_admins_may_ask(world: World, role: str) -> None:
    assert _post(world.client(role), "body LOCAL_A /a/\n").status_code == 404  # (ADR 0050: as a page)


def test_the_rules_page_wires_the_editor_and_a_domain_admin_gets_no_checker(world: World) -> None:
    page = world.client("global_admin").get("/security/layers/rules/").content.decode()
    assert 'data-validate="/api/rules/validate/"' in page and 'id="id_local_rules-problems"' in page
    url = f"/security/layers/rules/?domain={world.a.domain.pk}"
    page = world.client("domain_admin").get(url).content.decode()
    assert '<textarea name="local_rules"' in page and "disabled" in page.split('<textarea name="local_rules"')[1][:300]


def test_it_warns_of_a_meta_reading_a_rule_no_rule_file_defines(world: World, tmp_path: Any) -> None:
    from webadmin.services import do_publish_policy, do_set_layer_settings

    (tmp_path / "site.cf").write_text("body SITE_RULE /site/\n")
    do_set_layer_settings("rules", {"include_default": False, "rule_dirs": [str(tmp_path)]})
    do_publish_policy("test")
    body = _post(world.client("global_admin"), "body LOCAL_A /a/\nmeta LOCAL_M LOCAL_A && SITE_RULE && !LOCAL_TYPO\n").json()
    assert body["errors"] == [] and body["warnings"] == [
        {"line": 2, "message": "LOCAL_M reads LOCAL_TYPO, which no rule defines (read as 0)", "severity": "warning"}]
