"""Digest links: signed, bound to one message and recipient, expiring; GET confirms, POST acts,
release works once."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from tests.django.conftest import World


def _links(world: World) -> dict[str, str]:
    from quarantine.tasks import send_digests

    send_digests()
    m = next(x for x in mail.outbox if x.to == ["user@a.example"])
    found = dict(re.findall(r"^\s+(View|Release|Release and allow sender):\s+(\S+)$", m.body, re.M))
    return {k: v.split("://", 1)[1].split("/", 1)[1] for k, v in found.items()}


def test_it_confirms_on_get_and_releases_once_on_post(world: World, smtp_sink: list[Any]) -> None:
    from quarantine.models import QuarantineRecipient

    url = "/" + _links(world)["Release"]
    c = Client(enforce_csrf_checks=True)
    r = c.get(url)
    assert r.status_code == 200 and b'id="confirm"' in r.content
    assert QuarantineRecipient.objects.get(message=world.a.qmessage).status == "held"  # GET changed nothing
    token = c.cookies["csrftoken"].value
    r = c.post(url, {"csrfmiddlewaretoken": token})
    assert r.status_code == 200 and b"released to your mailbox" in r.content
    assert [e.rcpt_tos for e in smtp_sink] == [["user@a.example"]]
    r = c.post(url, {"csrfmiddlewaretoken": token})
    assert b"already released" in r.content
    assert len(smtp_sink) == 1
    # Without the CSRF token the POST is refused.
    assert Client(enforce_csrf_checks=True).post(url).status_code == 403


def test_it_rejects_forged_tampered_and_expired_links(world: World, settings: Any) -> None:
    from quarantine import digests
    from webadmin.models import AdminSettings

    good = digests.make_token(world.a.qmessage.qid, "user@a.example", "release")
    c = Client()
    assert c.get(f"/digest/{good}/").status_code == 200
    # Bound to the recipient: a token for another recipient of a message they do not hold is 404.
    other = digests.make_token(world.b.qmessage.qid, "user@a.example", "release")
    assert c.get(f"/digest/{other}/").status_code == 404
    assert c.get(f"/digest/{good[:-2]}xx/").status_code == 404
    assert c.get("/digest/not-a-token/").status_code == 404
    s = AdminSettings.get()
    s.digest_link_days = 0
    s.save()
    import time

    time.sleep(1.1)
    assert c.get(f"/digest/{good}/").status_code == 410


def test_it_allows_the_sender_with_release_and_allow(world: World, smtp_sink: list[Any]) -> None:
    from webadmin.models import ListEntry, UserListEntry

    url = "/" + _links(world)["Release and allow sender"]
    c = Client()
    c.get(url)
    c.post(url)
    e = UserListEntry.objects.get(list="allow", value="spam@spam.test")
    assert e.account == world.a.accounts["user"]
    assert not ListEntry.objects.filter(value="spam@spam.test").exists()  # never domain-wide


def test_it_sends_digests_only_when_due(world: World) -> None:
    from quarantine.tasks import send_digests
    from webadmin.models import Account

    Account.objects.filter(mailbox="user@b.example").update(digest_schedule="never")
    assert send_digests() == 1
    assert send_digests() == 0  # nothing new and not due again


@pytest.mark.parametrize("action", ["view", "release"])
def test_it_shows_the_message_safely_from_a_link(world: World, action: str) -> None:
    from quarantine import digests

    t = digests.make_token(world.a.qmessage.qid, "user@a.example", action)
    r = Client().get(f"/digest/{t}/")
    assert b"<script>alert" not in r.content
    assert b"&lt;script&gt;" in r.content
