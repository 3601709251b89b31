""""Mark as spam / not spam" trains the Bayes scopes the message's classification reads
(global, ``dom:<domain>`` with per_domain, ``user:<address>`` with per_user), the ones autolearn
learned it into: a correction must reach the most specific scope that has learned enough. These
are a global administrator's corrections; a domain administrator's reach only their tenant's
scopes (tests/django/test_training_scope_by_actor.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World

pytestmark = pytest.mark.usefixtures("eager_tasks")


def _counts(store: MemoryStore, scope: str) -> tuple[int, int]:
    st = BayesClassifier(store).stats(scope)
    return st["spam_learned"], st["ham_learned"]


def _learn_as_autolearn_did(world: World, scopes: list[str]) -> None:
    from quarantine.services import read_message
    from webadmin.antispam_tasks import learn_bytes

    assert learn_bytes(read_message(world.a.qmessage), True, scopes)


def _mark(world: World, action: str) -> Any:
    c = world.client("global_admin")
    return c.post(f"/messages/quarantine/{world.a.qmessage.pk}/action/", {"action": action}, follow=True)


def test_marking_as_ham_moves_the_domain_and_user_scopes_too(world: World, store: MemoryStore) -> None:
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("bayes", {"per_user": True})
    scopes = ["user:user@a.example", "dom:a.example", "global"]
    _learn_as_autolearn_did(world, scopes)
    assert [_counts(store, s) for s in scopes] == [(1, 0)] * 3
    r = _mark(world, "ham")
    assert "Marked as not spam." in [str(m) for m in r.context["messages"]]
    assert [_counts(store, s) for s in scopes] == [(0, 1)] * 3
    assert _counts(store, "dom:b.example") == (0, 0) and _counts(store, "user:user@b.example") == (0, 0)


def test_marking_as_spam_follows_the_published_bayes_settings(world: World, store: MemoryStore) -> None:
    # per_domain on and per_user off by default: the user's scope is neither read nor learned
    r = _mark(world, "spam")
    assert "Marked as spam." in [str(m) for m in r.context["messages"]]
    assert _counts(store, "global") == (1, 0) and _counts(store, "dom:a.example") == (1, 0)
    assert _counts(store, "user:user@a.example") == (0, 0)
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("bayes", {"per_domain": False, "per_user": True})
    _mark(world, "ham")
    assert _counts(store, "global") == (0, 1) and _counts(store, "user:user@a.example") == (0, 1)
    assert _counts(store, "dom:a.example") == (1, 0)  # no longer read, so not corrected either


def test_a_domain_setting_decides_for_its_own_mail(world: World, store: MemoryStore) -> None:
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("bayes", {"per_user": True}, domain=world.a.domain)
    _mark(world, "spam")
    assert _counts(store, "user:user@a.example") == (1, 0) and _counts(store, "dom:a.example") == (1, 0)


def test_a_message_to_two_local_recipients_trains_no_user_scope(world: World, store: MemoryStore) -> None:
    # the layer reads a user's scope only for a message to one local recipient (autolearn likewise)
    from reports.models import MessageRecipient
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("bayes", {"per_user": True})
    MessageRecipient.objects.create(message=world.a.message, address="other@a.example", domain="a.example",
                                    action="accept")
    _mark(world, "spam")
    assert _counts(store, "dom:a.example") == (1, 0) and _counts(store, "global") == (1, 0)
    assert _counts(store, "user:user@a.example") == (0, 0) and _counts(store, "user:other@a.example") == (0, 0)


def test_without_its_log_record_the_quarantined_recipients_decide(world: World, store: MemoryStore) -> None:
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("bayes", {"per_user": True})
    world.a.message.delete()  # (the log kept for less time than the quarantine)
    _mark(world, "spam")
    assert [_counts(store, s) for s in ("user:user@a.example", "dom:a.example", "global")] == [(1, 0)] * 3


def test_the_payload_scopes_only_narrow_the_messages_own(world: World, store: MemoryStore) -> None:
    from webadmin.antispam_tasks import train_message

    assert train_message.delay("spam", quarantine_ids=[world.a.qmessage.qid],
                               scopes=["dom:elsewhere.test", "dom:a.example"]).get() \
        == {"learned": 1, "unchanged": 0, "missing": 0}
    assert _counts(store, "dom:a.example") == (1, 0)
    assert _counts(store, "dom:elsewhere.test") == (0, 0) and _counts(store, "global") == (0, 0)
    # without scopes a quarantined message is learned nowhere
    assert train_message.delay("ham", quarantine_ids=[world.a.qmessage.qid]).get() \
        == {"learned": 0, "unchanged": 1, "missing": 0}
    assert _counts(store, "dom:a.example") == (1, 0) and _counts(store, "global") == (0, 0)
