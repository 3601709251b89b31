"""Users mark their own quarantined mail as spam / not spam where the Bayes layer keeps
per-user scopes (``per_user``): the feedback teaches their own scope ``user:ADDRESS`` only,
never their domain's or the global one (which others read), through the pages and the API,
single and bulk; the message log's marking stays with administrators; where ``per_user`` is
off (the default) nothing is offered and the action answers 404 (test_training_scope_by_actor.py)."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World
from tests.django.test_training_scope_by_actor import _learned

pytestmark = pytest.mark.usefixtures("eager_tasks")



def _per_user(domain: str | None = None) -> None:
    from webadmin.models import Domain
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("bayes", {"per_user": True}, Domain.objects.get(name=domain) if domain else None)


@pytest.mark.parametrize("path", ["page", "bulk", "api", "api_bulk"])
def test_a_user_teaches_only_their_own_scope(world: World, store: MemoryStore, path: str) -> None:
    _per_user()
    c = world.client("user", "a")
    pk = world.a.qmessage.pk
    r = {"page": lambda: c.post(f"/messages/quarantine/{pk}/action/", {"action": "spam"}),
         "bulk": lambda: c.post("/messages/quarantine/bulk/", {"action": "spam", "ids": [pk]}),
         "api": lambda: c.post(f"/api/quarantine/{pk}/act/", {"action": "spam"}, content_type="application/json"),
         "api_bulk": lambda: c.post("/api/quarantine/bulk/", {"action": "spam", "ids": [pk]},
                                    content_type="application/json")}[path]()
    assert r.status_code in (200, 302), r.content
    assert _learned(store) == {"user:user@a.example": (1, 0)}
    # and back: "not spam" moves it in the same scope only
    c.post(f"/api/quarantine/{pk}/act/", {"action": "ham"}, content_type="application/json")
    assert _learned(store) == {"user:user@a.example": (0, 1)}


def test_the_pages_offer_marking_to_a_user_with_per_user_bayes(world: World) -> None:
    c = world.client("user", "a")
    assert 'value="spam"' not in c.get(f"/messages/quarantine/{world.a.qmessage.pk}/").content.decode()
    _per_user()
    for url in ("/messages/quarantine/", f"/messages/quarantine/{world.a.qmessage.pk}/"):
        body = c.get(url).content.decode()
        assert 'value="spam"' in body and 'value="ham"' in body, url


def test_per_user_bayes_of_another_domain_gives_a_user_nothing(world: World, store: MemoryStore) -> None:
    _per_user("b.example")
    c = world.client("user", "a")
    pk = world.a.qmessage.pk
    assert c.post(f"/messages/quarantine/{pk}/action/", {"action": "spam"}).status_code == 404
    assert _learned(store) == {}
    # b's user may mark b's message, in b's user scope; never a's message (not theirs to see)
    cb = world.client("user", "b")
    assert cb.post(f"/api/quarantine/{pk}/act/", {"action": "spam"},
                   content_type="application/json").status_code == 404
    r = cb.post(f"/api/quarantine/{world.b.qmessage.pk}/act/", {"action": "spam"}, content_type="application/json")
    assert r.status_code == 200, r.content
    assert _learned(store) == {"user:user@b.example": (1, 0)}


def test_the_message_log_marking_stays_with_administrators(world: World, store: MemoryStore) -> None:
    _per_user()
    c = world.client("user", "a")
    assert c.post(f"/logging/log/{world.a.message.pk}/action/", {"action": "spam"}).status_code == 404
    assert c.post(f"/api/messages/{world.a.message.pk}/action/", {"action": "spam"},
                  content_type="application/json").status_code == 404
    assert _learned(store) == {}


def test_a_forged_payload_from_a_user_teaches_no_other_scope(world: World, store: MemoryStore) -> None:
    """The scopes come from the server, not the request: whatever a user posts, only their own."""
    _per_user()
    c = world.client("user", "a")
    r = c.post(f"/api/quarantine/{world.a.qmessage.pk}/act/",
               {"action": "spam", "scopes": ["global", "dom:a.example"]}, content_type="application/json")
    assert r.status_code == 200, r.content
    assert _learned(store) == {"user:user@a.example": (1, 0)}


def _also_to_a_colleague(world: World, first: bool) -> None:
    """Tenant a's message went to colleague@a.example too (logged first or after user@a.example)."""
    from quarantine.models import QuarantineRecipient
    from reports.models import MessageRecipient

    if first:  # the log keeps the order the milter saw: the colleague's recipient first
        MessageRecipient.objects.filter(message=world.a.message).delete()
        addresses = ["colleague@a.example", "user@a.example"]
    else:
        addresses = ["colleague@a.example"]
    for a in addresses:
        MessageRecipient.objects.create(message=world.a.message, address=a, domain="a.example", action="quarantine",
                                        quarantine_id=world.a.qmessage.qid)
    QuarantineRecipient.objects.create(message=world.a.qmessage, address="colleague@a.example", domain="a.example")


@pytest.mark.parametrize("first", [True, False], ids=["colleague-first", "colleague-second"])
def test_a_user_teaches_their_scope_with_a_message_to_several(world: World, store: MemoryStore, first: bool) -> None:
    """The milter reads a user scope only for mail to one local recipient: a message to two was
    learned in no scope the user may teach (the action said it was queued, and nothing changed)."""
    _per_user()
    _also_to_a_colleague(world, first)
    r = world.client("user", "a").post(f"/api/quarantine/{world.a.qmessage.pk}/act/", {"action": "spam"},
                                       content_type="application/json")
    assert r.status_code == 200, r.content
    assert _learned(store) == {"user:user@a.example": (1, 0)}
    st = BayesClassifier(store).stats("user:colleague@a.example")
    assert (st["spam_learned"], st["ham_learned"]) == (0, 0)  # not the colleague's to teach
