"""Your own rules on the rules layer's page (``local_rules``): a text area, checked when saved
(the line or rule named on the field), kept in the policy, and the scan tool sees them score."""

from __future__ import annotations

from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db
URL = "/security/layers/rules/"


def _data(c: Any, **changes: str) -> dict[str, Any]:
    form = c.get(URL).context["form"]
    data = {k: ("on" if v is True else v) for k, v in form.initial.items() if v is not None and v is not False}
    data.pop("include_default", None)  # (the stock set off: this test's rules alone, built in ms)
    data.update(changes)
    return data


def test_rules_written_on_the_page_are_checked_saved_and_used(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from webadmin.services import current_snapshot

    monkeypatch.setenv("GATEWAY_DATA_DIR", str(world.data_dir))
    c = world.client("global_admin")
    page = c.get(URL).content.decode()
    assert '<textarea name="local_rules"' in page
    bad = "body LOCAL_PIZZA /pizza(/\r\nscore LOCAL_PIZZA 3\r\n"
    r = c.post(URL, _data(c, local_rules=bad))
    assert r.status_code == 400 and "LOCAL_PIZZA would not run" in r.content.decode()
    assert current_snapshot().settings_for("rules").local_rules == ""
    good = "body LOCAL_PIZZA /pizza/i\r\nscore LOCAL_PIZZA 3\r\nrequired_score 4\r\n"
    r = c.post(URL, _data(c, local_rules=good), follow=True)
    shown = [str(m) for m in r.context["messages"]]
    assert any("saved" in m for m in shown) and any("line 3 (required_score)" in m for m in shown), shown
    assert current_snapshot().settings_for("rules").local_rules == good
    # and the pipeline scores with them
    from gateway_milter.layers.rules import engine_from_settings

    assert "LOCAL_PIZZA" in engine_from_settings(current_snapshot().settings_for("rules")).rules


def test_a_domain_admin_cannot_write_them(world: World) -> None:
    c = world.client("domain_admin")
    url = f"{URL}?domain={world.a.domain.pk}"
    form = c.get(url).context["form"]
    assert form.fields["local_rules"].disabled
    data = {k: ("on" if v is True else v) for k, v in form.initial.items() if v is not None and v is not False}
    data["local_rules"] = "body LOCAL_X /x/\n"
    c.post(url, data)
    from webadmin.services import current_snapshot

    assert current_snapshot().settings_for("rules", world.a.domain.name).local_rules == ""


def test_rules_check_reads_the_published_policy(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import json

    from django.core.management import call_command

    from webadmin.services import do_publish_policy, do_set_layer_settings

    monkeypatch.setenv("GATEWAY_DATA_DIR", str(world.data_dir))
    do_set_layer_settings("rules", {"include_default": False,
                                    "local_rules": "body LOCAL_PIZZA /pizza/\nbody LOCAL_SOUP /soup/\n"})
    do_publish_policy("test")
    out = io.StringIO()
    call_command("rules", "check", "--policy", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["running"] == 2 and report["default_set"] == [] and report["unsupported"] == {}
