""""Mark as spam / not spam" trains only the Bayes scopes the actor administers (docs/ui.md,
"Roles"): a global administrator the message's own scopes (global, its domains', its user's);
a domain or quarantine administrator their domains' and their recipients' scopes, never global
nor another tenant's; a user only where per-user Bayes is on, and then only their own scope
(tests/django/test_user_training_own_scope.py); elsewhere a user cannot mark at all (404 like
any action a role may not use, ADR 0050), through the pages and the API, single and bulk, and
nothing is learned when refused."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World

pytestmark = pytest.mark.usefixtures("eager_tasks")

SCOPES = ("global", "dom:a.example", "dom:b.example", "user:user@a.example", "user:user@b.example")


def _learned(store: MemoryStore) -> dict[str, tuple[int, int]]:
    """The scopes that learned anything: scope -> (spam, ham)."""
    out = {}
    for scope in SCOPES:
        st = BayesClassifier(store).stats(scope)
        if st["spam_learned"] or st["ham_learned"]:
            out[scope] = (st["spam_learned"], st["ham_learned"])
    return out


def _also_to_tenant_a(world: World) -> None:
    """Tenant b's message also went to user@a.example (b's recipient first, as logged)."""
    from quarantine.models import QuarantineRecipient
    from reports.models import MessageRecipient

    MessageRecipient.objects.create(message=world.b.message, address="user@a.example", domain="a.example",
                                    action="quarantine", quarantine_id=world.b.qmessage.qid)
    QuarantineRecipient.objects.create(message=world.b.qmessage, address="user@a.example", domain="a.example")


def _per_user() -> None:
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("bayes", {"per_user": True})


# -- administrators ------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["domain_admin", "quarantine_admin"])
def test_it_trains_only_the_tenants_scope_for_a_message_to_two_tenants(world: World, store: MemoryStore,
                                                                       role: str) -> None:
    _also_to_tenant_a(world)
    r = world.client(role, "a").post(f"/messages/quarantine/{world.b.qmessage.pk}/action/", {"action": "ham"},
                                     follow=True)
    assert "Marked as not spam." in [str(m) for m in r.context["messages"]]
    assert _learned(store) == {"dom:a.example": (0, 1)}


def test_it_trains_a_domain_admins_domain_and_user_scopes_never_global(world: World, store: MemoryStore) -> None:
    _per_user()
    world.client("domain_admin", "a").post(f"/messages/quarantine/{world.a.qmessage.pk}/action/", {"action": "spam"})
    assert _learned(store) == {"dom:a.example": (1, 0), "user:user@a.example": (1, 0)}


def test_it_trains_the_tenants_scope_through_the_api_and_the_bulk_action(world: World, store: MemoryStore) -> None:
    _also_to_tenant_a(world)
    c = world.client("domain_admin", "a")
    r = c.post(f"/api/quarantine/{world.b.qmessage.pk}/act/", {"action": "spam"}, content_type="application/json")
    assert r.status_code == 200 and r.json() == {"result": "marked as spam"}
    assert _learned(store) == {"dom:a.example": (1, 0)}
    r = c.post("/api/quarantine/bulk/", {"action": "ham", "ids": [world.a.qmessage.pk, world.b.qmessage.pk]},
               content_type="application/json")
    assert r.json() == {"done": 2, "failed": []}
    assert _learned(store) == {"dom:a.example": (0, 2)}
    c.post("/messages/quarantine/bulk/", {"action": "spam", "ids": [world.a.qmessage.pk, world.b.qmessage.pk]})
    assert _learned(store) == {"dom:a.example": (2, 0)}


def test_it_trains_the_tenants_scope_from_the_message_log(world: World, store: MemoryStore) -> None:
    _also_to_tenant_a(world)
    c = world.client("domain_admin", "a")
    c.post(f"/logging/log/{world.b.message.pk}/action/", {"action": "spam"})
    assert _learned(store) == {"dom:a.example": (1, 0)}
    r = c.post(f"/api/messages/{world.b.message.pk}/action/", {"action": "ham"}, content_type="application/json")
    assert r.json() == {"result": "queued"}
    assert _learned(store) == {"dom:a.example": (0, 1)}


def test_a_global_admin_trains_global_and_every_recipients_domain(world: World, store: MemoryStore) -> None:
    _also_to_tenant_a(world)
    c = world.client("global_admin")
    c.post(f"/messages/quarantine/{world.b.qmessage.pk}/action/", {"action": "ham"})
    assert _learned(store) == {"global": (0, 1), "dom:b.example": (0, 1), "dom:a.example": (0, 1)}


def test_a_global_admin_trains_global_domain_and_user_as_before(world: World, store: MemoryStore) -> None:
    _per_user()
    c = world.client("global_admin")
    c.post(f"/messages/quarantine/{world.a.qmessage.pk}/action/", {"action": "spam"})
    assert _learned(store) == {"global": (1, 0), "dom:a.example": (1, 0), "user:user@a.example": (1, 0)}
    r = c.post(f"/api/quarantine/{world.a.qmessage.pk}/act/", {"action": "ham"}, content_type="application/json")
    assert r.status_code == 200
    assert _learned(store) == {"global": (0, 1), "dom:a.example": (0, 1), "user:user@a.example": (0, 1)}


def test_the_task_ignores_scopes_that_are_not_the_messages(world: World, store: MemoryStore) -> None:
    # a payload naming another tenant's scope (or global) for a's message teaches neither
    from webadmin.antispam_tasks import train_message

    train_message.delay("spam", quarantine_ids=[world.a.qmessage.qid], scopes=["dom:b.example", "user:user@b.example"])
    assert _learned(store) == {}


# -- users ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["spam", "ham"])
def test_it_refuses_a_user_marking_through_every_path(world: World, store: MemoryStore, action: str) -> None:
    """Without per-user Bayes (the default) a user has no scope of their own to teach."""
    c = world.client("user", "a")
    pk = world.a.qmessage.pk
    assert c.post(f"/messages/quarantine/{pk}/action/", {"action": action}).status_code == 404
    assert c.post("/messages/quarantine/bulk/", {"action": action, "ids": [pk]}).status_code == 404
    assert c.post(f"/api/quarantine/{pk}/act/", {"action": action}, content_type="application/json").status_code == 404
    assert c.post("/api/quarantine/bulk/", {"action": action, "ids": [pk]},
                  content_type="application/json").status_code == 404
    assert c.post(f"/logging/log/{world.a.message.pk}/action/", {"action": action}).status_code == 404
    assert c.post(f"/api/messages/{world.a.message.pk}/action/", {"action": action},
                  content_type="application/json").status_code == 404
    assert _learned(store) == {}


def test_a_user_still_releases_and_deletes(world: World, store: MemoryStore) -> None:
    c = world.client("user", "a")
    r = c.post(f"/api/quarantine/{world.a.qmessage.pk}/act/", {"action": "delete"}, content_type="application/json")
    assert r.status_code == 200 and r.json() == {"result": "deleted for 1 recipient(s)"}


def test_the_pages_offer_marking_to_administrators_only(world: World) -> None:
    for role, offered in (("user", False), ("quarantine_admin", True), ("domain_admin", True)):
        c = world.client(role, "a")
        for url in ("/messages/quarantine/", f"/messages/quarantine/{world.a.qmessage.pk}/"):
            body = c.get(url).content.decode()
            assert ('value="spam"' in body) is offered, (role, url)
            assert 'value="release"' in body
