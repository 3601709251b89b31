"""Layer settings pages in real Chromium: DNSBL and URIBL zones (one JSON object per line)
survive an unchanged save, and a bad line is reported on the zones field; the rules page's own
rules are checked as they are typed."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter import layers
from tests.browser.conftest import login, shot
from tests.django.conftest import World

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("username", "layer", "zone"), [
    ("root", "uribl", {"zone": "multi.surbl.org", "weight": 4, "mask": "0x08", "kind": "domain"}),
    ("dadmin_a", "dnsbl", {"zone": "zen.spamhaus.org", "weight": 5, "action": "refuse",
                           "codes": ["127.0.0.2-127.0.0.11"]})])
def test_it_saves_zones_unchanged_and_flags_a_bad_line(page: Any, live_server: Any, bworld: World, username: str,
                                                       layer: str, zone: dict[str, Any]) -> None:
    from webadmin.models import LayerSetting
    from webadmin.services import do_set_layer_settings

    domain = bworld.a.domain if username == "dadmin_a" else None
    do_set_layer_settings(layer, {"zones": [zone]}, domain)
    base = live_server.url
    login(page, base, username)
    page.goto(f"{base}/security/layers/{layer}/" + (f"?domain={domain.pk}" if domain else ""))
    page.click("button:has-text('Save and publish')")
    page.wait_for_load_state()
    assert f"{layers.get(layer).title} settings saved" in page.content()
    assert LayerSetting.objects.get(layer=layer, domain=domain).values["zones"] == [zone]
    zones = page.locator("textarea[name=zones]")
    zones.fill(zones.input_value() + "\n{zone: 'x.example'}")
    page.click("button:has-text('Save and publish')")
    page.wait_for_load_state()
    errors = page.locator("textarea[name=zones] ~ .errorlist li").all_inner_texts()
    assert len(errors) == 1 and errors[0].startswith("line 2: "), errors
    assert LayerSetting.objects.get(layer=layer, domain=domain).values["zones"] == [zone]
    shot(page, f"layer-{layer}-zones-error")


def test_the_rules_editor_flags_a_bad_rule_at_its_line_as_it_is_typed(page: Any, live_server: Any,
                                                                      bworld: World) -> None:
    base = live_server.url
    login(page, base, "root")
    page.goto(f"{base}/security/layers/rules/")
    page.locator("#id_local_rules-problems li.ok").wait_for()  # (the empty text: no errors)
    editor = page.locator("textarea[name=local_rules]")
    editor.type("body LOCAL_PIZZA /pizza/i\nscore LOCAL_PIZZA 3\nrequired_score 4\nbody LOCAL_BAD /bad(/\n", delay=0)
    problem = page.locator("#id_local_rules-problems li.problem").first
    problem.wait_for()
    assert problem.get_attribute("data-line") == "4" and "LOCAL_BAD would not run" in problem.inner_text()
    warning = page.locator("#id_local_rules-problems li.warning").first
    assert warning.get_attribute("data-line") == "3" and "required_score" in warning.inner_text()
    assert editor.get_attribute("aria-invalid") == "true"
    problem.click()  # the caret moves to the rule's line
    caret_line = page.evaluate("() => { const t = document.querySelector('textarea[name=local_rules]');"
                               " return t.value.slice(0, t.selectionStart).split('\\n').length; }")
    assert caret_line == 4
    shot(page, "rules-editor-problems")
    editor.fill("body LOCAL_PIZZA /pizza/i\n")
    page.locator("#id_local_rules-problems li.ok").wait_for()
    assert editor.get_attribute("aria-invalid") == "false"


def test_a_number_of_seconds_shows_its_duration_as_it_is_typed(page: Any, live_server: Any, bworld: World) -> None:
    base = live_server.url
    login(page, base, "root")
    page.goto(f"{base}/security/layers/greylist/")
    assert page.locator("#id_expiry-duration").inner_text() == "= 36 days"
    assert page.locator("#id_delay-duration").inner_text() == "= 5 minutes"
    page.locator("#id_delay").fill("90")
    assert page.locator("#id_delay-duration").inner_text() == "= 1.5 minutes"
    page.locator("#id_delay").fill("30")  # under a minute: the number says it
    assert page.locator("#id_delay-duration").inner_text() == ""
    page.locator("#id_delay").fill("")
    assert page.locator("#id_delay-duration").inner_text() == ""
    assert page.locator("#id_auto_pass_after-duration").count() == 0  # a count, not seconds
