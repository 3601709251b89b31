"""A user's Bayes scope is one per mailbox: mail to ``user+news@a.example`` is classified,
autolearned and corrected in ``user:user@a.example`` (the address without its extension, at
the bayes layer's ``recipient_delimiter``), not in a scope per extension that would each need
200 messages of each class before being read."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.context import ConnectionInfo, MessageContext, Recipient
from gateway_milter.layers.base import SettingsError
from gateway_milter.layers.bayes import BayesSettings, scopes_for, user_address
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World

pytestmark = pytest.mark.usefixtures("eager_tasks")


@pytest.mark.parametrize(("address", "delims", "user"), [
    ("Alice+News@Example.COM", "+", "alice@example.com"),
    ("alice+news+daily@example.com", "+", "alice@example.com"),
    ("alice-news@example.com", "+-", "alice@example.com"),
    ("alice+x-y@example.com", "-+", "alice@example.com"),  # the first delimiter in the address
    ("+team@example.com", "+", "+team@example.com"),  # a leading one is the name itself
    ("alice+news@example.com", "", "alice+news@example.com"),
    ("postmaster", "+", "postmaster"),
])
def test_a_user_is_named_without_the_extension(address: str, delims: str, user: str) -> None:
    assert user_address(address, delims) == user


def test_the_delimiter_is_checked() -> None:
    for bad in ("@", "+ ", "\"", "\\", "\x00", "+-=_.~!#$"):
        with pytest.raises(SettingsError, match="recipient_delimiter"):
            BayesSettings(recipient_delimiter=bad)
    assert BayesSettings(recipient_delimiter="+-").recipient_delimiter == "+-"


def test_the_milter_reads_and_learns_the_users_scope(world: World) -> None:
    from webadmin.services import current_snapshot

    ctx = MessageContext(ConnectionInfo(), current_snapshot())
    ctx.recipients.append(Recipient("User+News@a.example", "a.example", True))
    ctx.policy_domain = "a.example"
    assert scopes_for(ctx, BayesSettings(per_user=True)) == ["user:user@a.example", "dom:a.example", "global"]
    assert scopes_for(ctx, BayesSettings(per_user=True, recipient_delimiter=""))[0] == "user:user+news@a.example"


def test_marking_mail_to_an_extension_teaches_the_users_scope(world: World, store: MemoryStore) -> None:
    from quarantine.models import QuarantineRecipient
    from reports.models import MessageRecipient
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("bayes", {"per_user": True})
    QuarantineRecipient.objects.filter(message=world.a.qmessage).update(address="user+news@a.example")
    MessageRecipient.objects.filter(message=world.a.message).update(address="user+news@a.example")
    c = world.client("global_admin")
    c.post(f"/messages/quarantine/{world.a.qmessage.pk}/action/", {"action": "spam"})
    bc = BayesClassifier(store)
    assert bc.stats("user:user@a.example")["spam_learned"] == 1
    assert bc.stats("user:user+news@a.example")["spam_learned"] == 0


def test_bayes_train_names_the_users_scope(world: World, store: MemoryStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "m.eml").write_bytes(b"From: a@s.test\nSubject: hi\nMessage-ID: <x@s.test>\n\nhello there\n")
    call_command("bayes", "train", "--ham", str(tmp_path / "m.eml"), "--scope", "user:User+News@a.example",
                 stdout=io.StringIO(), stderr=io.StringIO())
    assert BayesClassifier(store).stats("user:user@a.example")["ham_learned"] == 1
