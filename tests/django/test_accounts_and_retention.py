"""User verification sources (local list, SMTP callout with cache), auto-creation on first
verified mail, and quarantine / log retention."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from tests.django.conftest import World
from tests.django.smtp_sink import SmtpSink


def test_it_verifies_recipients_through_the_sources_in_order(world: World) -> None:
    from webadmin.models import VerificationSource, VerifiedAddress
    from webadmin.verification import verify_address

    dom = world.a.domain
    VerificationSource.objects.create(domain=dom, order=1, kind="local")
    assert verify_address("user@a.example").exists is True
    assert verify_address("ghost@a.example", use_cache=False).exists is False
    assert verify_address("someone@elsewhere.test").source == "not-local"
    with SmtpSink(known={"carol@a.example"}) as mx:
        VerificationSource.objects.all().delete()
        VerificationSource.objects.create(domain=dom, order=1, kind="smtp",
                                          config={"host": "127.0.0.1", "port": mx.port}, cache_hours=24)
        v = verify_address("carol@a.example")
        assert (v.exists, v.source) == (True, "smtp")
        assert verify_address("nobody@a.example").exists is False
    # The server is gone: the cached answers still hold.
    assert verify_address("carol@a.example").exists is True
    VerifiedAddress.objects.filter(address="carol@a.example").update(checked=timezone.now() - dt.timedelta(days=2))
    assert verify_address("carol@a.example").exists is None  # expired, and nobody can tell now


def test_it_creates_users_on_first_verified_mail(world: World) -> None:
    from reports.models import MessageLog, MessageRecipient
    from reports.tasks import autocreate_users
    from webadmin.models import Account, VerificationSource

    with SmtpSink(known={"new@a.example"}) as mx:
        VerificationSource.objects.create(domain=world.a.domain, kind="smtp", auto_create=True,
                                          config={"host": "127.0.0.1", "port": mx.port})
        m = MessageLog.objects.create(log_id="auto1", time=timezone.now(), direction="inbound", action="accept",
                                      mail_from="x@y.test")
        for a in ("new@a.example", "unknown@a.example", "new@b.example"):
            MessageRecipient.objects.create(message=m, address=a, domain=a.split("@")[1], action="accept")
        assert autocreate_users() == 1
    acct = Account.objects.get(mailbox="new@a.example")
    assert acct.role == "user" and acct.source == "auto"
    assert not Account.objects.filter(mailbox__in=["unknown@a.example", "new@b.example"]).exists()


def test_it_purges_expired_quarantine_and_log(world: World) -> None:
    from quarantine.models import QuarantinedMessage
    from quarantine.services import store
    from quarantine.tasks import purge_expired
    from reports.models import MessageLog
    from reports.tasks import purge_log
    from webadmin.models import AdminSettings

    s = AdminSettings.get()
    s.quarantine_retention_days, s.log_retention_days = 10, 30
    s.save()
    old = world.b.qmessage
    QuarantinedMessage.objects.filter(pk=old.pk).update(created=timezone.now() - dt.timedelta(days=11))
    path = store().path_for(old.storage_path)
    assert path.exists()
    assert purge_expired() == 1
    assert not path.exists() and not QuarantinedMessage.objects.filter(pk=old.pk).exists()
    assert QuarantinedMessage.objects.filter(pk=world.a.qmessage.pk).exists()
    MessageLog.objects.filter(pk=world.b.message.pk).update(time=timezone.now() - dt.timedelta(days=31))
    assert purge_log() == 1
    assert list(MessageLog.objects.values_list("pk", flat=True)) == [world.a.message.pk]


def test_it_lets_users_manage_only_their_own_lists_and_settings(world: World) -> None:
    from webadmin.models import Account, UserListEntry

    c = world.client("user")
    assert c.post("/account/lists/", {"list": "block", "value": "pest@spam.test"}).status_code == 302
    mine = UserListEntry.objects.get(value="pest@spam.test")
    assert mine.account == world.a.accounts["user"]
    other = world.b.user_list_entry
    assert c.post(f"/account/lists/{other.pk}/delete/").status_code == 404
    assert UserListEntry.objects.filter(pk=other.pk).exists()
    assert c.post("/account/settings/", {"digest_schedule": "hours", "digest_every_hours": 4}).status_code == 302
    assert Account.objects.get(pk=world.a.accounts["user"].pk).digest_every_hours == 4


def test_it_hides_user_pages_when_options_say_so(world: World) -> None:
    from webadmin.models import UserOptions

    UserOptions.objects.create(domain=world.a.domain, view_quarantine=False, view_log=False, manage_lists=False)
    c = world.client("user")
    for url in ("/messages/quarantine/", f"/messages/quarantine/{world.a.qmessage.pk}/", "/logging/log/",
                "/account/lists/", "/api/quarantine/", "/api/messages/", "/api/user-lists/"):
        r: Any = c.get(url)
        assert r.status_code == 404, url
    assert c.get("/account/").status_code == 200


def test_it_verifies_and_logs_in_through_ldap(world: World, monkeypatch: Any) -> None:
    """ldap3's in-memory server (a fake: no slapd on the test machines) behind the same calls."""
    import ldap3
    from django.test import Client

    from webadmin import verification
    from webadmin.models import VerificationSource

    server = ldap3.Server("fake-dc")
    seed = ldap3.Connection(server, user="cn=svc,dc=a,dc=example", password="svc-pass",
                            client_strategy=ldap3.MOCK_SYNC)
    seed.strategy.add_entry("cn=svc,dc=a,dc=example", {"userPassword": "svc-pass", "objectClass": "person"})
    seed.strategy.add_entry("uid=user,dc=a,dc=example", {"mail": "user@a.example", "userPassword": "ldap-secret-1",
                                                         "objectClass": "person"})

    def fake_connection(cfg: dict[str, str], user: str | None, password: str | None) -> Any:
        # Connections on the same mock Server share its directory.
        return ldap3.Connection(server, user=user, password=password, client_strategy=ldap3.MOCK_SYNC)

    monkeypatch.setattr(verification, "ldap_connection", fake_connection)
    VerificationSource.objects.create(domain=world.a.domain, kind="ldap", allow_login=True, config={
        "url": "ldap://fake-dc", "bind_dn": "cn=svc,dc=a,dc=example", "bind_password": "svc-pass",
        "base_dn": "dc=a,dc=example", "filter": "(mail={address})", "login_dn": "uid={local},dc=a,dc=example"})
    assert verification.verify_address("user@a.example", use_cache=False).exists is True
    assert verification.verify_address("nobody@a.example", use_cache=False).exists is False
    assert verification.authenticate_mailbox("user@a.example", "ldap-secret-1") is True
    assert verification.authenticate_mailbox("user@a.example", "wrong") is False
    # Dynamic authentication on the login page (the local password is different).
    c = Client()
    assert c.post("/accounts/login/", {"username": "user@a.example", "password": "ldap-secret-1"})["Location"] == "/"
    assert c.get("/account/").status_code == 200


def test_it_trains_bayes_from_the_quarantine_by_task_name(world: World) -> None:
    pytest.importorskip("webadmin.antispam_tasks")
    from config.celery import app

    if not app.conf.task_always_eager:
        pytest.skip("needs the embedded (eager) task setup; with a broker the task runs in a worker")
    c = world.client("domain_admin")
    r = c.post(f"/messages/quarantine/{world.a.qmessage.pk}/action/", {"action": "spam"}, follow=True)
    assert "Marked as spam." in [str(m) for m in r.context["messages"]]
    r = c.post(f"/logging/log/{world.a.message.pk}/action/", {"action": "ham"}, follow=True)
    assert "Queued for training as not spam." in [str(m) for m in r.context["messages"]]
