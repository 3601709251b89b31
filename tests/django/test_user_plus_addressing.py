"""A user sees the mail held for their address with an extension (``user+news@a.example``,
delivered to them by Postfix's recipient_delimiter) in their quarantine and message log, not
only mail to the address itself; never an extended form that is another account's address,
another domain's, or one without the delimiter (the Bayes layer's ``recipient_delimiter``,
``+`` by default; empty: none)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from tests.django.conftest import World, login_client

pytestmark = pytest.mark.django_db

RCPTS = {
    "plus-news": "user+news@a.example",
    "plus-deep": "user+a+b@a.example",
    "other-domain": "user+news@b.example",
    "no-delimiter": "usernews@a.example",
    "dash": "user-news@a.example",
    "claimed": "user+boss@a.example",
    "two-at": "user+x@evil.example@a.example",
}
SEEN = {"plus-news", "plus-deep"}


def hold(world: World, marker: str, rcpt: str) -> Any:
    from gateway_milter.store.quarantine import FilesystemQuarantineStore
    from quarantine.models import QuarantinedMessage, QuarantineRecipient
    from reports.models import MessageLog, MessageRecipient

    raw = f"From: x@spam.test\r\nTo: {rcpt}\r\nSubject: held {marker}\r\n\r\nbody\r\n".encode()
    meta = FilesystemQuarantineStore(world.data_dir / "quarantine").store(raw, {"created": timezone.now().timestamp()})
    now = timezone.now() - dt.timedelta(minutes=1)
    log = MessageLog.objects.create(log_id=f"plus-{marker}", time=now, direction="inbound", client_ip="192.0.2.1",
                                    mail_from="x@spam.test", subject=f"held {marker}", size=len(raw), score=9.0,
                                    action="quarantine", policy_version=1)
    MessageRecipient.objects.create(message=log, address=rcpt, domain=rcpt.rpartition("@")[2], action="quarantine",
                                    quarantine_id=meta["qid"])
    q = QuarantinedMessage.objects.create(qid=meta["qid"], log_id=log.log_id, queue="user", created=now,
                                          mail_from="x@spam.test", subject=f"held {marker}", size=len(raw), score=9.0,
                                          direction="inbound", storage_path=meta["path"])
    QuarantineRecipient.objects.create(message=q, address=rcpt, domain=rcpt.rpartition("@")[2])
    return q


def held_markers(body: str) -> set[str]:
    return {m for m in RCPTS if f"held {m}" in body}


def test_a_user_sees_mail_to_their_extended_address_and_nothing_else(world: World) -> None:
    from webadmin.services import do_save_account

    boss = do_save_account(None, username="boss@a.example", role="user", mailbox="boss@a.example",
                           aliases=["user+boss@a.example"], password="Correct-horse-9")
    held = {m: hold(world, m, r) for m, r in RCPTS.items()}
    c = world.client("user")
    assert held_markers(c.get("/messages/quarantine/").content.decode()) == SEEN
    assert held_markers(c.get("/logging/log/").content.decode()) == SEEN
    api = c.get("/api/quarantine/").json()
    assert held_markers(str(api)) == SEEN
    for m, q in held.items():
        code = c.get(f"/messages/quarantine/{q.pk}/").status_code
        assert code == (200 if m in SEEN else 404), (m, code)
    # the account whose alias the extended form is sees it, and not the user's other ones
    assert held_markers(login_client(boss.user).get("/messages/quarantine/").content.decode()) == {"claimed"}
    # the user acts on what they see (delete), and not on the others'
    from quarantine.models import QuarantineRecipient

    r = c.post(f"/messages/quarantine/{held['plus-news'].pk}/action/", {"action": "delete"})
    assert r.status_code == 302, r.status_code
    assert QuarantineRecipient.objects.get(message=held["plus-news"]).status == "deleted"
    assert c.post(f"/messages/quarantine/{held['claimed'].pk}/action/", {"action": "delete"}).status_code == 404
    assert QuarantineRecipient.objects.get(message=held["claimed"]).status == "held"


def test_without_a_delimiter_only_the_address_itself(world: World) -> None:
    from webadmin.services import do_publish_policy, do_set_layer_settings

    do_set_layer_settings("bayes", {"recipient_delimiter": ""}, actor="root")
    do_publish_policy("test")
    for m, r in RCPTS.items():
        hold(world, m, r)
    c = world.client("user")
    assert held_markers(c.get("/messages/quarantine/").content.decode()) == set()
    assert held_markers(c.get("/logging/log/").content.decode()) == set()


def test_another_accounts_non_ascii_alias_stays_theirs(world: World) -> None:
    from webadmin.services import do_save_account

    jorg = do_save_account(None, username="jörg@a.example", role="user", mailbox="jörg@a.example",
                           password="Correct-horse-9")
    do_save_account(None, username="chef@a.example", role="user", mailbox="chef@a.example",
                    aliases=["jörg+chef@a.example"], password="Correct-horse-9")
    hold(world, "mine", "jörg+news@a.example")
    hold(world, "theirs", "jörg+chef@a.example")
    body = login_client(jorg.user).get("/messages/quarantine/").content.decode()
    assert "held mine" in body and "held theirs" not in body


def test_the_digest_lists_mail_to_extended_addresses(world: World, mailoutbox: list[Any]) -> None:
    from quarantine.digests import send_digest
    from webadmin.services import do_save_account

    do_save_account(None, username="boss@a.example", role="user", mailbox="boss@a.example",
                    aliases=["user+boss@a.example"], password="Correct-horse-9")
    for m, r in RCPTS.items():
        hold(world, m, r)
    acct = world.a.accounts["user"]
    assert send_digest(acct) == 3  # the two extended forms and the fixture's own message
    [mail] = mailoutbox
    assert held_markers(mail.body) == SEEN
