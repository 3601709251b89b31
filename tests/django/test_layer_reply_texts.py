"""The SMTP reply texts of the layers' settings (``reject_text``, ``reply_text``) are checked
when saved: an empty text (greylisting then deferred with "Message rejected by policy"), one
with other letters than printable ASCII (sent with "?" in their place) or one longer than a
reply line (cut) is refused with the field named, in the API as in the service."""

from __future__ import annotations

from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def _put(c: Any, layer: str, values: dict[str, Any]) -> Any:
    return c.put(f"/api/layers/{layer}/?domain=a.example", {"settings": values}, content_type="application/json")


@pytest.mark.parametrize(("layer", "field", "text", "why"), [
    ("greylist", "reply_text", "", "must not be empty"),
    ("greylist", "reply_text", "   ", "must not be empty"),
    ("greylist", "reply_text", "Grauliste: bitte später erneut versuchen", "printable ASCII"),
    ("scoring", "reject_text", "x" * 401, "at most 400 characters"),
    ("dnsbl", "reject_text", "listed by {zone}\x01", "printable ASCII"),
])
def test_a_reply_text_no_reply_can_carry_is_refused(world: World, layer: str, field: str, text: str,
                                                    why: str) -> None:
    from gateway_milter import layers
    from webadmin.models import LayerSetting

    if layer not in layers.available():
        pytest.skip(f"layer {layer} not in this build")
    r = _put(world.client("global_admin"), layer, {field: text})
    assert r.status_code == 400, r.content
    assert any(why in m for m in r.json()[f"settings.{layer}.{field}"]), r.json()
    assert not LayerSetting.objects.filter(layer=layer).exists()


def test_a_plain_reply_text_is_saved(world: World) -> None:
    from webadmin.services import do_set_layer_settings

    text = "Greylisted:  please\ttry again in 5 minutes"  # (white space runs go out as one space)
    assert do_set_layer_settings("greylist", {"reply_text": text}) == []


@pytest.mark.parametrize(("layer", "field", "text"), [
    ("greylist", "reply_text", ""),
    ("greylist", "reply_text", "Grauliste: bitte später erneut versuchen"),
    ("scoring", "reject_text", "x" * 401),
])
def test_a_domain_admins_reply_text_is_checked_too(world: World, layer: str, field: str, text: str) -> None:
    from webadmin.models import LayerSetting

    r = _put(world.client("domain_admin"), layer, {field: text})
    assert r.status_code == 400, r.content
    assert f"settings.{layer}.{field}" in r.json(), r.json()
    assert not LayerSetting.objects.filter(layer=layer).exists()


@pytest.mark.parametrize(("layer", "values", "field"), [
    ("dnsbl", {"reject_code": "abc"}, "reject_code"),
    ("scoring", {"reject_enhanced": "9.9.9"}, "reject_enhanced"),
    ("lists", {"reject_code": "451"}, "reject_enhanced"),  # (5.7.1 does not fit 451)
])
def test_a_bad_reply_code_names_its_field(world: World, layer: str, values: dict[str, Any], field: str) -> None:
    r = _put(world.client("global_admin"), layer, values)
    assert r.status_code == 400, r.content
    assert f"settings.{layer}.{field}" in r.json(), r.json()
