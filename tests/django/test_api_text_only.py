"""JSON bodies whose strings are not text get 400, on every API endpoint: a lone surrogate
(``\\ud800``, valid JSON that no UTF-8 encoder takes; it was stored and then failed as a 500 while
the answer was rendered) or a NUL (``\\u0000``, which PostgreSQL refuses in text and jsonb).
So does a body that is JSON but not an object (eight endpoints answered 500 to ``[]``).
Nothing is saved. Runs on SQLite and on PostgreSQL (pass 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.django.conftest import World
from webadmin.api_input import not_text

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "x\x00y"])
@pytest.mark.parametrize(("method", "url", "body"), [
    ("put", "/api/layers/lists/", lambda v: {"settings": {"block_action": v}}),
    ("put", "/api/layers/scoring/", lambda v: {"settings": {"subject_tag": v}}),
    ("put", "/api/layers/rules/", lambda v: {"settings": {"local_rules": f"body LOCAL_A /{v}/\n"}}),
    ("put", "/api/layers/dnsbl/", lambda v: {"settings": {"zones": [{"zone": v, "weight": 1}]}}),
    ("post", "/api/domains/", lambda v: {"name": "new.example", "note": v}),
    ("post", "/api/lists/", lambda v: {"list": "allow", "value": f"{v}@x.example"}),
    ("post", "/api/sieve/validate/", lambda v: {"source": f'if header :contains "subject" "{v}" {{ keep; }}'}),
    ("post", "/api/rules/validate/", lambda v: {"source": v}),
    ("put", "/api/layers/lists/", lambda v: {"settings": {v: 1}}),  # (a key)
])
def test_strings_that_are_not_text_get_400_and_change_nothing(world: World, method: str, url: str, body: Any,
                                                              bad: str) -> None:
    from webadmin.models import Domain, LayerSetting

    c = world.client("global_admin")
    before = (list(LayerSetting.objects.values_list("layer", "values")), Domain.objects.count())
    r = getattr(c, method)(url, data=json.dumps(body(bad)), content_type="application/json")
    assert r.status_code == 400, (r.status_code, r.content[:300])
    assert "not text" in r.json()["detail"]
    assert (list(LayerSetting.objects.values_list("layer", "values")), Domain.objects.count()) == before


def test_text_passes_and_the_check_reads_keys_and_nesting() -> None:
    assert not not_text({"a": ["é\u2028 \U0001f600", {"k": "v"}, 1, None, True]})
    assert not_text({"a": [{"b": ["\ud83d"]}]}) and not_text({"\x00": 1}) and not_text(["\udc80"])


def test_ordinary_json_still_works(world: World) -> None:
    c = world.client("global_admin")
    rules = "body LOCAL_E /caf\u00e9\u2028/\ndescribe LOCAL_E Caf\u00e9 \U0001f600\n"
    r = c.put("/api/layers/rules/", data=json.dumps({"settings": {"local_rules": rules}}),
              content_type="application/json")
    assert r.status_code == 200, r.content
    assert r.json()["settings"]["local_rules"] == rules


@pytest.mark.parametrize("body", ["[]", "[1, 2]", '"x"', "5", "null", "true"])
@pytest.mark.parametrize(("method", "url"), [
    ("post", "/api/quarantine/{q}/act/"), ("post", "/api/quarantine/bulk/"), ("post", "/api/sieve/validate/"),
    ("post", "/api/rules/validate/"), ("put", "/api/layers/rules/"), ("post", "/api/messages/{m}/action/"),
    ("put", "/api/user-options/"), ("patch", "/api/settings/"), ("post", "/api/domains/"),
])
def test_a_body_that_is_not_an_object_gets_400(world: World, method: str, url: str, body: str) -> None:
    c = world.client("global_admin")
    r = getattr(c, method)(url.format(q=world.a.qmessage.pk, m=world.a.message.pk), data=body,
                           content_type="application/json")
    assert r.status_code == 400, (r.status_code, r.content[:300])
    assert "must be an object" in r.json()["detail"]


def test_a_value_the_database_refuses_is_a_400_not_a_500() -> None:
    """The fallback for a check a view misses (webadmin/api_input.py): DataError is a 400."""
    from django.db import DataError

    from webadmin.api_input import exception_handler

    r = exception_handler(DataError("value too long for type character varying(200)"), {})
    assert r.status_code == 400 and "nothing changed" in r.data["detail"]
