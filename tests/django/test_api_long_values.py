"""Values longer than their database columns, sent to every API endpoint that stores text,
answer 400 (or are stored within bounds), never 500. SQLite stores any length; PostgreSQL refused
a mailbox over 254 characters and a public URL over 200 with a DataError, a 500 (pass 2 runs this
on PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db

L = "x" * 300
LL = "y" * 5000


def _cases(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    d = world.a.domain.pk
    return [
        ("post", "/api/domains/", {"name": L + ".example"}),
        ("post", "/api/domains/", {"name": "ok.example", "mail_servers": [L]}),
        ("post", "/api/domains/", {"name": "ok2.example", "aliases": [L + ".example"]}),
        ("patch", f"/api/domains/{d}/", {"mail_servers": ["a" * 70 + "." + "b" * 250]}),
        ("post", "/api/lists/", {"list": "allow", "value": L + "@x.example"}),
        ("post", "/api/lists/", {"list": "allow", "value": "a@x.example", "comment": LL}),
        ("post", "/api/lists/", {"list": "allow", "value": LL}),
        ("post", "/api/user-lists/", {"list": "allow", "value": L + "@x.example"}),
        ("post", "/api/scripts/", {"name": L, "source": "keep;"}),
        ("post", "/api/verification-sources/", {"domain": d, "kind": L}),
        ("put", "/api/layers/scoring/", {"settings": {"subject_tag": LL}}),
        ("post", "/api/antispam/bayes/wipe/", {"scope": "dom:" + L}),
        ("post", "/api/antispam/greylist/clear/", {"network": L}),
        ("put", "/api/user-options/", {"options": {L: True}}),
        ("post", "/api/dkim/", {"domain": L, "selector": L}),
    ]


def test_long_values_never_answer_500(world: World) -> None:
    c = world.client("global_admin")
    bad = []
    for method, url, body in _cases(world):
        r = getattr(c, method)(url, data=json.dumps(body), content_type="application/json")
        if r.status_code >= 500:
            bad.append((method, url, r.status_code))
    assert bad == []


@pytest.mark.parametrize(("url", "method", "body", "field"), [
    ("/api/users/", "post", {"username": "okname", "mailbox": "a" * 64 + "@" + "b" * 250, "role": "user"}, None),
    ("/api/users/", "post", {"username": "ok2", "mailbox": "ok2@a.example", "role": "user",
                             "aliases": ["a" * 60 + "@" + "c" * 250]}, None),
    ("/api/settings/", "patch", {"public_url": "https://" + L}, "public_url"),
    ("/api/settings/", "patch", {"public_url": "https://host.example/a b"}, "public_url"),
])
def test_the_two_that_answered_500_on_postgresql_are_400(world: World, url: str, method: str, body: dict[str, Any],
                                                        field: str | None) -> None:
    from webadmin.models import Account, AdminSettings

    r = getattr(world.client("global_admin"), method)(url, data=json.dumps(body), content_type="application/json")
    assert r.status_code == 400, (r.status_code, r.content[:300])
    if field:
        assert field in r.json()
    assert not Account.objects.filter(user__username__in=["okname", "ok2"]).exists()
    assert AdminSettings.get().public_url == ""


def test_list_entries_are_bounded_as_their_columns(world: World) -> None:
    """A user's own list entry of 409 characters was a DataError 500 on PostgreSQL (the page and
    the API); a policy file's entry comment over 200 too."""
    from gateway_milter.layers.base import SettingsError
    from gateway_milter.policy.lists import validate_entry
    from webadmin.models import UserListEntry

    long_value = "x" * 400 + "@x.example"
    r = world.client("user").post("/account/lists/", {"list": "allow", "value": long_value})
    assert r.status_code in (200, 302, 400)
    r = world.client("user").post("/api/user-lists/", data=json.dumps({"list": "allow", "value": long_value}),
                                  content_type="application/json")
    assert r.status_code == 400
    assert not UserListEntry.objects.filter(value=long_value).exists()
    for field, raw in (("value", {"list": "allow", "kind": "sender", "value": long_value}),
                       ("comment", {"list": "allow", "kind": "sender", "value": "a@x.example", "comment": "c" * 201})):
        with pytest.raises(SettingsError) as e:
            validate_entry(raw, "entry")
        assert e.value.path == f"entry.{field}"
    assert validate_entry({"list": "allow", "kind": "sender", "value": "a@x.example", "comment": "c" * 200},
                          "entry").value == "a@x.example"
