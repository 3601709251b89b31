"""A quarantined copy is stored as it arrived, before the transforms: with the sender's own
X-Spam-Flag / X-Spam-Status. A release re-injects it past the milter, so those headers reached
the mailbox, where a downstream filter written for SpamAssassin trusts them (a released false
positive filed as Junk by the sender's "X-Spam-Flag: YES"). They are removed on release, as
the milter removes them on delivery (``scoring.remove_foreign_headers``)."""

from __future__ import annotations

import itertools
from typing import Any

from django.utils import timezone

from quarantine.models import QuarantinedMessage, QuarantineRecipient
from quarantine.services import do_release_message, store
from tests.django.conftest import World
from webadmin.models import LayerSetting
from webadmin.services import do_publish_policy

_N = itertools.count(1)
RAW = (b"Received: from mx.sender.test\r\nFrom: Friend <friend@sender.test>\r\nTo: user@a.example\r\n"
       b"X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=9.9 required=5.0\r\n\ttests=SENDERS_OWN\r\n"
       b"Subject: minutes\r\nx-spam-level: *********\r\n\r\nThe minutes.\r\nX-Spam-Flag: YES in the body\r\n")


def _held(world: World) -> QuarantinedMessage:
    meta = store().store(RAW, {"created": timezone.now().timestamp()})
    m = QuarantinedMessage.objects.create(
        qid=f"fsh-{next(_N)}-{meta['qid']}"[:40], log_id=world.a.qmessage.log_id, queue="user", created=timezone.now(),
        mail_from="friend@sender.test", header_from="friend@sender.test", subject="minutes", reason="spam",
        size=len(RAW), score=6.0, direction="inbound", storage_path=meta["path"])
    QuarantineRecipient.objects.create(message=m, address="user@a.example", domain="a.example")
    return m


def test_a_release_delivers_none_of_the_senders_spam_headers(world: World, smtp_sink: list[Any]) -> None:
    assert do_release_message(_held(world)) == ["user@a.example"]
    sent = smtp_sink[-1].content.replace(b"\r\n", b"\n")
    head, _, body = sent.partition(b"\n\n")
    assert b"x-spam" not in head.lower() and b"SENDERS_OWN" not in head
    assert head.startswith(b"Received: from mx.sender.test\nFrom: Friend <friend@sender.test>\nTo: user@a.example\n"
                           b"Subject: minutes")
    assert b"X-Spam-Flag: YES in the body" in body


def test_remove_foreign_headers_off_keeps_them(world: World, smtp_sink: list[Any]) -> None:
    LayerSetting.objects.update_or_create(layer="scoring", domain=world.a.domain,
                                          defaults={"values": {"remove_foreign_headers": False}})
    do_publish_policy("test")
    do_release_message(_held(world))
    head = smtp_sink[-1].content.replace(b"\r\n", b"\n").partition(b"\n\n")[0]
    assert b"\nX-Spam-Flag: YES\nX-Spam-Status: Yes, score=9.9 required=5.0\n\ttests=SENDERS_OWN\n" in head
