"""A NUL character in a search or a posted value is refused, never a 500. PostgreSQL refuses a
NUL in any string it is given: the log search, the quarantine, user and list searches and the
API's filters answered 500 there (SQLite took it), and a user's own list entry with one failed
as it was stored. Runs on SQLite and on PostgreSQL (pass 2)."""

from __future__ import annotations

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("url", "params"), [
    ("/logging/log/", {"sender": "a\x00b"}), ("/logging/log/", {"subject": "\x00"}),
    ("/logging/log/export.csv", {"recipient": "\x00"}), ("/messages/quarantine/", {"q": "a\x00b"}),
    ("/setup/users/", {"q": "a\x00b"}), ("/security/lists/", {"q": "a\x00b"}),
    ("/api/messages/", {"domain": "\x00"}), ("/api/quarantine/", {"q": "\x00"}),
    ("/logging/log/", {"a\x00": "x"}),  # (a key)
])
def test_a_nul_in_the_query_is_a_400(world: World, url: str, params: dict[str, str]) -> None:
    r = world.client("global_admin").get(url, params)
    assert r.status_code == 400 and b"NUL" in r.content


def test_searches_without_nul_still_work(world: World) -> None:
    c = world.client("global_admin")
    assert c.get("/logging/log/", {"sender": "spam@spam.test"}).status_code == 200
    assert c.get("/api/messages/", {"domain": "a.example"}).status_code == 200


def test_a_users_own_list_entry_with_a_nul_is_refused(world: World) -> None:
    from gateway_milter.layers.base import SettingsError
    from gateway_milter.policy.lists import validate_entry
    from webadmin.models import UserListEntry

    before = UserListEntry.objects.count()
    r = world.client("user").post("/account/lists/", {"list": "allow", "value": "a\x00b@x.example"})
    assert r.status_code < 500
    assert UserListEntry.objects.count() == before
    for field, raw in (("value", {"list": "block", "kind": "host", "value": "a\x01.example"}),
                       ("comment", {"list": "block", "kind": "ip", "value": "192.0.2.1", "comment": "x\x00"})):
        with pytest.raises(SettingsError) as e:
            validate_entry(raw, "e")
        assert e.value.path == f"e.{field}"
