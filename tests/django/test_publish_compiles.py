"""A policy version the milter could not load is never published: its system scripts (the
global settings' and every domain's) are compiled first, and a failure is a settings error
that saves nothing. Before, such a version was published and the milter kept its old one,
refusing every later version as well, with only a line in its log."""

from __future__ import annotations

from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def test_settings_whose_scripts_do_not_compile_are_not_published(world: World,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.layers.base import SettingsError
    from gateway_milter.sieve import policy as sieve_policy
    from webadmin.models import LayerSetting, PublishedPolicy
    from webadmin.services import do_set_layer_settings

    before = PublishedPolicy.objects.count()
    real = sieve_policy.system_script_source

    def broken(lid: str, rules: list[Any]) -> tuple[str, dict[int, str]]:
        src, lines = real(lid, rules)
        return (src + "\nrefuse :code \"451\" \"no\";\n", lines) if lid == "scoring" else (src, lines)

    monkeypatch.setattr(sieve_policy, "system_script_source", broken)
    with pytest.raises(SettingsError) as e:
        do_set_layer_settings("scoring", {"mode": "on", "reject_score": 15}, world.a.domain)
    assert "the milter cannot load" in str(e.value) and "system:scoring" in str(e.value)
    assert PublishedPolicy.objects.count() == before
    assert not LayerSetting.objects.filter(layer="scoring", domain=world.a.domain).exists()


def test_a_4xx_reject_code_is_published(world: World) -> None:
    from webadmin.models import PublishedPolicy
    from webadmin.services import do_set_layer_settings

    before = PublishedPolicy.objects.count()
    do_set_layer_settings("scoring", {"mode": "on", "reject_code": "451", "reject_enhanced": "4.7.1"}, world.a.domain)
    assert PublishedPolicy.objects.count() == before + 1
