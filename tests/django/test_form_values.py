"""Posted form values no key can have answer with the form's error, never 500: a domain id of 20
digits for a new account raised OverflowError in SQLite's binding (PostgreSQL refuses it too).
Found by posting hostile values to every form of the web admin. Runs on SQLite and on PostgreSQL
(pass 2)."""

from __future__ import annotations

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "1e3", "abc", "\u0661" * 30])
def test_an_id_no_domain_can_have_is_an_invalid_choice(world: World, value: str) -> None:
    c = world.client("global_admin")
    r = c.post("/setup/users/new/", {"username": "newadmin", "role": "domain_admin", "domains": [value],
                                     "digest_schedule": "daily", "digest_every_hours": "6"})
    assert r.status_code == 200 and b"is not a valid value" in r.content


def test_a_domain_chosen_by_its_id_is_still_taken(world: World) -> None:
    from webadmin.models import Account

    c = world.client("global_admin")
    r = c.post("/setup/users/new/", {"username": "newadmin", "role": "domain_admin", "domains": [str(world.a.domain.pk)],
                                     "password": "Correct-horse-9", "digest_schedule": "daily", "digest_every_hours": "6"})
    assert r.status_code == 302, r.content[:2000]
    acct = Account.objects.get(user__username="newadmin")
    assert [d.name for d in acct.domains.all()] == ["a.example"]
