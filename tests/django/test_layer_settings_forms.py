"""The layer settings pages round-trip: what a page shows, submitted unchanged as a browser
would, stores the same settings. Lists of mappings (DNSBL and URIBL zones) are edited as one
JSON object per line; their errors land on the field with the line and the setting's path."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client

from tests.django.conftest import World

pytestmark = pytest.mark.django_db

DNSBL_ZONES = [{"zone": "zen.spamhaus.org", "weight": 5, "action": "refuse", "codes": ["127.0.0.2-127.0.0.11"]},
               {"zone": "bl.spamcop.net", "weight": 2.5}]
URIBL_ZONES = [{"zone": "multi.surbl.org", "weight": 4, "mask": "0x08", "kind": "domain"}]
DOMAIN_ZONES = {"dnsbl": [{"zone": "dnsbl.a.example", "weight": 3}],
                "uribl": [{"zone": "uribl.a.example", "weight": 3, "kind": "any"}]}
GLOBAL_ZONES = {"dnsbl": DNSBL_ZONES, "uribl": URIBL_ZONES}


class _PostForm(HTMLParser):
    """The fields a browser submits from the page's POST form: text and number inputs, checked
    checkboxes, selected options, textareas (first newline dropped, lines sent as CRLF)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: dict[str, str] = {}
        self._in_form = False
        self._textarea: str | None = None
        self._select: str | None = None
        self._first_option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._in_form = a.get("method", "").lower() == "post"
        if not self._in_form:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind == "checkbox":
                if "checked" in a:
                    self.data[a["name"]] = a.get("value") or "on"
            elif kind != "submit":
                self.data[a["name"]] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.data[a["name"]] = ""
        elif tag == "select":
            self._select, self._first_option = a["name"], None
        elif tag == "option" and self._select:
            if self._first_option is None:
                self._first_option = a.get("value", "")
            if "selected" in a:
                self.data[self._select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "textarea" and self._textarea:
            text = self.data[self._textarea]
            text = text[1:] if text.startswith("\n") else text
            self.data[self._textarea] = text.replace("\r\n", "\n").replace("\n", "\r\n")
            self._textarea = None
        elif tag == "select" and self._select:
            self.data.setdefault(self._select, self._first_option or "")
            self._select = None


def _page_data(c: Client, url: str) -> dict[str, str]:
    r = c.get(url)
    assert r.status_code == 200
    p = _PostForm()
    p.feed(r.content.decode())
    p.data.pop("csrfmiddlewaretoken", None)
    return p.data


def _effective(layer: str, domain: Any = None) -> Any:
    from gateway_milter import layers
    from gateway_milter.layers.base import settings_from_dict
    from webadmin.models import LayerSetting

    glob = LayerSetting.objects.filter(layer=layer, domain=None).first()
    row = LayerSetting.objects.filter(layer=layer, domain=domain).first() if domain is not None else None
    return settings_from_dict(layers.get(layer).Settings, {**(glob.values if glob else {}),
                                                           **(row.values if row else {})})


def _stored(layer: str, domain: Any = None) -> dict[str, Any] | None:
    from webadmin.models import LayerSetting

    row = LayerSetting.objects.filter(layer=layer, domain=domain).first()
    return row.values if row else None


def _scope(world: World, role: str) -> tuple[Client, Any, str]:
    """Global admins edit the global settings, domain admins their domain's override."""
    c = world.client(role)
    if role == "global_admin":
        return c, None, ""
    return c, world.a.domain, f"?domain={world.a.domain.pk}"


def _zones_page(world: World, role: str, layer: str) -> tuple[Client, Any, str, dict[str, str]]:
    """Zones set globally and for a.example; the role's page of *layer* as a browser submits it."""
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings(layer, {"zones": GLOBAL_ZONES[layer]})
    do_set_layer_settings(layer, {"zones": DOMAIN_ZONES[layer]}, world.a.domain)
    c, domain, q = _scope(world, role)
    url = f"/security/layers/{layer}/{q}"
    return c, domain, url, _page_data(c, url)


ROLES_LAYERS = [(r, lid) for r in ("global_admin", "domain_admin") for lid in ("dnsbl", "uribl")]


@pytest.mark.parametrize(("role", "layer"), ROLES_LAYERS)
def test_it_shows_zones_as_json_and_saves_them_unchanged(world: World, role: str, layer: str) -> None:
    c, domain, url, data = _zones_page(world, role, layer)
    zones = GLOBAL_ZONES[layer] if domain is None else DOMAIN_ZONES[layer]
    assert data["zones"].splitlines()[0].startswith('{"zone": "')  # JSON, not a Python repr
    stored, effective = _stored(layer, domain), _effective(layer, domain)
    r = c.post(url, data)
    assert r.status_code == 302, r.context["form"].errors.as_data()
    if domain is None:  # the global page stores every field; the zones exactly as they were
        assert _stored(layer)["zones"] == zones  # type: ignore[index]
    else:  # a domain keeps only what differs from the global settings: its zones
        assert _stored(layer, domain) == stored == {"zones": zones}
    assert _effective(layer, domain) == effective


@pytest.mark.parametrize(("role", "layer"), ROLES_LAYERS)
def test_it_adds_a_zone(world: World, role: str, layer: str) -> None:
    c, domain, url, data = _zones_page(world, role, layer)
    before = _stored(layer, domain)["zones"]  # type: ignore[index]
    data["zones"] += '\r\n\r\n{"zone": "new.example.net", "weight": 1.5, "action": "score"}\r\n'
    r = c.post(url, data)
    assert r.status_code == 302, r.context["form"].errors.as_data()
    assert _stored(layer, domain)["zones"] == [*before, {"zone": "new.example.net", "weight": 1.5,  # type: ignore[index]
                                                         "action": "score"}]
    assert [z.zone for z in _effective(layer, domain).parsed][-1] == "new.example.net"


def _assert_refused(c: Client, url: str, data: dict[str, str], layer: str, domain: Any) -> list[str]:
    from webadmin.models import PublishedPolicy

    stored, version = _stored(layer, domain), PublishedPolicy.objects.count()
    r = c.post(url, data)
    assert r.status_code == 400  # (the form again, with the error)
    form = r.context["form"]
    assert not form.non_field_errors()
    assert _stored(layer, domain) == stored and PublishedPolicy.objects.count() == version
    shown = _PostForm()
    shown.feed(r.content.decode())
    assert shown.data["zones"] == data["zones"]  # the text comes back to be corrected
    return [str(m) for m in form.errors["zones"]]


@pytest.mark.parametrize(("role", "layer"), ROLES_LAYERS)
def test_it_names_the_line_of_bad_json(world: World, role: str, layer: str) -> None:
    c, domain, url, data = _zones_page(world, role, layer)
    first = data["zones"].splitlines()[0]
    data["zones"] = f"{first}\r\n{{zone: 'x.example'}}\r\n"
    errors = _assert_refused(c, url, data, layer, domain)
    assert len(errors) == 1 and errors[0].startswith("line 2: "), errors
    data["zones"] = f"{first}\r\n\r\n[1, 2]"
    assert _assert_refused(c, url, data, layer, domain) == ["line 3: must be a JSON object, not an array"]


@pytest.mark.parametrize(("role", "layer"), ROLES_LAYERS)
def test_it_puts_a_bad_zone_value_on_the_zones_field(world: World, role: str, layer: str) -> None:
    c, domain, url, data = _zones_page(world, role, layer)
    first = data["zones"].splitlines()[0]
    data["zones"] = f'{first}\r\n\r\n{{"zone": "bad.example.net", "weight": "heavy"}}'
    assert _assert_refused(c, url, data, layer, domain) == ["line 3 (zones[1].weight): must be a number"]


def test_it_reports_a_bad_mapping_on_its_field(world: World) -> None:
    c = world.client("global_admin")
    data = _page_data(c, "/security/layers/spf/")
    data["scores"] = '{"SPF_FAIL": 3.5,}'
    r = c.post("/security/layers/spf/", data)
    assert r.status_code == 400 and _stored("spf") is None
    assert [str(m) for m in r.context["form"].errors["scores"]] == [
        "not valid JSON: line 1, column 18: Expecting property name enclosed in double quotes"]
    data["scores"] = '{"SPF_FAIL": "high"}'
    r = c.post("/security/layers/spf/", data)
    assert r.status_code == 400 and _stored("spf") is None
    assert [str(m) for m in r.context["form"].errors["scores"]] == ["scores.SPF_FAIL: must be a number, not 'high'"]


# Values other than the defaults for every kind of setting, so the unchanged save below checks
# that each kind survives the page: mappings, lists, optional numbers, floats, text.
RICH = {"dnsbl": {"zones": DNSBL_ZONES, "skip_private": False, "reject_text": "Listed by {zone} "},
        "uribl": {"zones": URIBL_ZONES, "max_lookups": 7, "skip_domains": ["example.org", "example.net"]},
        "spf": {"scores": {"SPF_FAIL": 3.5, "SPF_SOFTFAIL": 1}},
        "scoring": {"bayes_max_points": 2.25},
        "greylist": {"mode": "on", "exempt_networks": ["192.0.2.0/24", "2001:db8::/32"]}}


def _layer_ids() -> list[str]:
    from gateway_milter import layers

    return list(layers.available())


@pytest.mark.parametrize("layer", _layer_ids())
def test_it_saves_every_layer_page_unchanged(world: World, layer: str) -> None:
    from webadmin.services import do_set_layer_settings

    if layer in RICH:
        do_set_layer_settings(layer, RICH[layer])
    effective = _effective(layer)
    for role in ("global_admin", "domain_admin"):
        c, domain, q = _scope(world, role)
        url = f"/security/layers/{layer}/{q}"
        r = c.post(url, _page_data(c, url))
        assert r.status_code == 302, (role, r.context["form"].errors.as_data())
        assert _effective(layer) == effective
        assert _effective(layer, world.a.domain) == effective
        assert _stored(layer, world.a.domain) in (None, {})  # nothing differs from the global settings
    for name, value in RICH.get(layer, {}).items():
        got = _stored(layer)[name]  # type: ignore[index]
        assert got == value and type(got) is type(value), name


def test_it_clears_an_optional_number_and_a_domain_list(world: World) -> None:
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("scoring", {"bayes_max_points": 2.25})
    c = world.client("global_admin")
    data = _page_data(c, "/security/layers/scoring/")
    assert data["bayes_max_points"] == "2.25"
    data["bayes_max_points"] = ""
    assert c.post("/security/layers/scoring/", data).status_code == 302
    assert _stored("scoring")["bayes_max_points"] is None  # type: ignore[index]
    assert c.post("/security/layers/scoring/", _page_data(c, "/security/layers/scoring/")).status_code == 302
    assert _stored("scoring")["bayes_max_points"] is None  # type: ignore[index]
    # A domain empties a list its global setting fills: the override is the empty list.
    do_set_layer_settings("uribl", {"skip_domains": ["example.org"]})
    c, domain, q = _scope(world, "domain_admin")
    data = _page_data(c, f"/security/layers/uribl/{q}")
    assert data["skip_domains"] == "example.org"
    data["skip_domains"] = ""
    assert c.post(f"/security/layers/uribl/{q}", data).status_code == 302
    assert _stored("uribl", domain) == {"skip_domains": []}
