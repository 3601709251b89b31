"""A domain administrator reads the spam-trap addresses of their own domain and the ``local@``
ones, not the other tenants' (a trap is worth only as long as it is secret; each domain's
admin saw every tenant's, in the API and on the page). Saving the page still works for them,
and the global list stays whole."""

from __future__ import annotations

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db

TRAPS = ["hidden-trap@b.example", "old-ceo@a.example", "trap@"]


def test_a_domain_admin_sees_only_their_traps(world: World) -> None:
    from webadmin.models import LayerSetting
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("spamtrap", {"addresses": TRAPS})
    c = world.client("domain_admin")
    r = c.get("/api/layers/spamtrap/?domain=a.example")
    assert r.status_code == 200 and r.json()["settings"]["addresses"] == ["old-ceo@a.example", "trap@"]
    url = f"/security/layers/spamtrap/?domain={world.a.domain.pk}"
    page = c.get(url).content.decode()
    assert "old-ceo@a.example" in page and "hidden-trap@b.example" not in page
    g = world.client("global_admin").get("/api/layers/spamtrap/").json()
    assert g["settings"]["addresses"] == TRAPS
    # the page saved by the domain admin: their own fields kept, the global list untouched
    from tests.django.test_layer_settings_forms import _page_data

    data = _page_data(c, url)
    data["trap_score"] = "50"
    r = c.post(url, data)
    assert r.status_code == 302, r.content.decode()[:2000]
    row = LayerSetting.objects.get(layer="spamtrap", domain=world.a.domain)
    assert row.values.get("trap_score") == 50 and "addresses" not in row.values
    assert LayerSetting.objects.get(layer="spamtrap", domain=None).values["addresses"] == TRAPS
