"""JSON of the wrong type for a field answers 400, never 500: the domain's server and alias
lists and an account's aliases were model JSON fields that took any JSON (a number, or a list
holding one, failed later in the save: a 500), and /api/me/ looked a list up in a dict.
Found by sending every endpoint type-confused bodies. Runs on SQLite and on PostgreSQL (pass 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def _cases(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    d, user = world.a.domain.pk, world.a.accounts["user"].pk
    return [
        ("patch", f"/api/domains/{d}/", {"mail_servers": 0}),
        ("patch", f"/api/domains/{d}/", {"mail_servers": ["mx.a.example", 1, None]}),
        ("patch", f"/api/domains/{d}/", {"aliases": True}),
        ("patch", f"/api/domains/{d}/", {"aliases": [{"a": 1}]}),
        ("post", "/api/domains/", {"name": "new.example", "mail_servers": 5}),
        ("patch", f"/api/users/{user}/", {"aliases": -1}),
        ("patch", f"/api/users/{user}/", {"aliases": [["x@a.example"]]}),
        ("patch", "/api/me/", {"digest_schedule": []}),
        ("patch", "/api/me/", {"digest_schedule": {"daily": 1}}),
    ]


def test_a_value_of_the_wrong_json_type_is_a_400(world: World) -> None:
    c = world.client("global_admin")
    for method, url, body in _cases(world):
        r = getattr(c, method)(url, data=json.dumps(body), content_type="application/json")
        assert r.status_code == 400, (method, url, body, r.status_code)
        field = list(body)[-1]  # (the one of the wrong type)
        assert field in r.json(), (url, r.json())


def test_lists_of_strings_are_still_taken(world: World) -> None:
    c = world.client("global_admin")
    d = world.a.domain
    r = c.patch(f"/api/domains/{d.pk}/", data=json.dumps({"mail_servers": ["mx1.a.example", " "],
                                                           "aliases": ["alias.example"]}),
                content_type="application/json")
    assert r.status_code == 200, r.content
    d.refresh_from_db()
    assert d.mail_servers == ["mx1.a.example"] and d.aliases == ["alias.example"]
    r = c.patch("/api/me/", data=json.dumps({"digest_schedule": "daily"}), content_type="application/json")
    assert r.status_code == 200
