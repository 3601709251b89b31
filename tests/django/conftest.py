"""Fixtures for the web admin tests: two tenants (a.example, b.example), an account of every
role, and for each tenant a logged message, a quarantined message stored on disk (with hostile
subject, attachment name and HTML body), a list entry and a Sieve script."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tests.unit.antispam.helpers import store  # noqa: F401 - fixture: a fresh default state store

HOSTILE_SUBJECT = '<script>alert("subj")</script> Cheap "watches" & more'
HOSTILE_FILENAME = '<img src=x onerror=alert(1)>.exe'
HOSTILE_HTML = ('<p>Hello <b>friend</b></p><script>alert("body")</script>'
                '<img src="http://tracker.invalid/p.gif" onerror="alert(2)"><a href="javascript:alert(3)">click</a>'
                '<iframe src="http://evil.invalid/"></iframe><div style="background:url(http://evil.invalid/x)">x</div>')
ROLES = ("global_admin", "domain_admin", "quarantine_admin", "user")


def hostile_message(rcpt: str, marker: str) -> bytes:
    m = EmailMessage()
    m["From"] = "Spammer <spam@spam.test>"
    m["To"] = rcpt
    m["Subject"] = f"{HOSTILE_SUBJECT} {marker}"
    m["Message-ID"] = f"<{marker}@spam.test>"
    m.set_content(f"plain body {marker} <script>alert('text')</script>")
    m.add_alternative(HOSTILE_HTML + f"<p>{marker}</p>", subtype="html")
    m.add_attachment(b"MZ fake", maintype="application", subtype="octet-stream", filename=HOSTILE_FILENAME)
    return m.as_bytes()


@dataclass
class Tenant:
    name: str
    domain: Any
    marker: str
    accounts: dict[str, Any] = field(default_factory=dict)
    message: Any = None
    qmessage: Any = None
    list_entry: Any = None
    user_list_entry: Any = None
    script: Any = None


@dataclass
class World:
    a: Tenant
    b: Tenant
    root: Any
    data_dir: Path

    def client(self, role: str, tenant: str = "a") -> Client:
        acct = self.root if role == "global_admin" else getattr(self, tenant).accounts[role]
        return login_client(acct.user)


def login_client(user: User) -> Client:
    c = Client()
    c.force_login(user)
    s = c.session
    s["bulwark_2fa"] = True
    s.save()
    return c


@pytest.fixture
def gateway_dir(settings: Any, tmp_path: Path) -> Path:
    settings.GATEWAY = dataclasses.replace(settings.GATEWAY, data_dir=tmp_path)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    from django.core.cache import cache

    cache.clear()  # charts and status are cached per user id; ids repeat between tests
    (tmp_path / "quarantine").mkdir()
    return tmp_path


def make_world(data_dir: Path, reinject_port: int | None = None) -> World:
    from gateway_milter.store.quarantine import FilesystemQuarantineStore
    from quarantine.models import QuarantinedMessage, QuarantineRecipient
    from reports.models import MessageLog, MessageRecipient
    from webadmin.models import AdminSettings, Domain, ListEntry, SieveScript, UserListEntry
    from webadmin.services import do_publish_policy, do_save_account

    s = AdminSettings.get()
    s.require_admin_totp = False
    s.save()
    quarantine = FilesystemQuarantineStore(data_dir / "quarantine")
    root = do_save_account(None, username="root", role="global_admin", password="Correct-horse-9")
    now = timezone.now()
    tenants = []
    for i, name in enumerate(("a.example", "b.example")):
        t = name[0]
        dom = Domain.objects.create(name=name, mail_servers=[f"mx.{name}"])
        ten = Tenant(name, dom, marker=f"tenant-{t}-secret")
        ten.accounts["domain_admin"] = do_save_account(None, username=f"dadmin_{t}", role="domain_admin",
                                                       domains=[dom], password="Correct-horse-9")
        ten.accounts["quarantine_admin"] = do_save_account(None, username=f"qadmin_{t}", role="quarantine_admin",
                                                           domains=[dom], password="Correct-horse-9")
        ten.accounts["user"] = do_save_account(None, username=f"user@{name}", role="user", mailbox=f"user@{name}",
                                               password="Correct-horse-9")
        rcpt = f"user@{name}"
        raw = hostile_message(rcpt, ten.marker)
        meta = quarantine.store(raw, {"created": now.timestamp()})
        log_id = f"log{t}{i:028d}"
        ten.message = MessageLog.objects.create(
            log_id=log_id, time=now - dt.timedelta(minutes=5 + i), direction="inbound", client_ip="192.0.2.1",
            mail_from="spam@spam.test", header_from="Spammer <spam@spam.test>",
            subject=f"{HOSTILE_SUBJECT} {ten.marker}", size=len(raw), score=9.5, action="quarantine",
            reason=f"spam score <b>9.5</b> {ten.marker}", symbols=[{"name": "BAYES_SPAM_99", "score": 5.0,
                                                                     "detail": "<script>x</script>", "layer": "bayes"}],
            trace=[{"source": "bayes", "event": "symbol", "detail": "<script>alert('trace')</script>", "ms": 1.0}],
            transcript=["MAIL FROM:<spam@spam.test>", f"RCPT TO:<{rcpt}>", "<script>alert('tx')</script>"],
            policy_version=1)
        MessageRecipient.objects.create(message=ten.message, address=rcpt, domain=name, action="quarantine",
                                        quarantine_id=meta["qid"])
        ten.qmessage = QuarantinedMessage.objects.create(
            qid=meta["qid"], log_id=log_id, queue="user", created=now - dt.timedelta(minutes=5), mail_from="spam@spam.test",
            header_from="Spammer <spam@spam.test>", subject=f"{HOSTILE_SUBJECT} {ten.marker}",
            reason=f"spam {ten.marker}", size=len(raw), score=9.5, direction="inbound", storage_path=meta["path"])
        QuarantineRecipient.objects.create(message=ten.qmessage, address=rcpt, domain=name)
        ten.list_entry = ListEntry.objects.create(list="block", kind="sender", value=f"bad@{ten.marker}.test",
                                                  domain=dom)
        ten.user_list_entry = UserListEntry.objects.create(account=ten.accounts["user"], list="allow",
                                                           value=f"friend@{ten.marker}.test")
        ten.script = SieveScript.objects.create(name=f"script-{t}", source="keep;\n", domain=dom)
        tenants.append(ten)
    do_publish_policy("test")
    return World(tenants[0], tenants[1], root, data_dir)


@pytest.fixture
def world(db: Any, gateway_dir: Path) -> World:
    return make_world(gateway_dir)


@pytest.fixture
def eager_tasks() -> None:
    """For a test that reads what a task did right after queueing it."""
    from config.celery import app

    if not app.conf.task_always_eager:
        pytest.skip("needs the embedded (eager) task setup; with a broker the task runs in a worker")


@pytest.fixture
def smtp_sink(settings: Any) -> Iterator[list[Any]]:
    """A real SMTP server on a free port standing in for the re-injection listener."""
    from tests.django.smtp_sink import SmtpSink

    with SmtpSink() as sink:
        settings.GATEWAY = dataclasses.replace(settings.GATEWAY, reinject_host="127.0.0.1", reinject_port=sink.port)
        yield sink.received


def page_when_done(c: Client, url: str, what: str, tries: int = 400) -> str:
    """The page of a background job (a scan, a training) once it no longer says
    ``data-state="running"``; AssertionError naming ``what`` after ``tries`` looks 50 ms apart."""
    import time

    for _ in range(tries):
        page = c.get(url).content.decode()
        if 'data-state="running"' not in page:
            return page
        time.sleep(0.05)
    raise AssertionError(f"the {what} did not finish")
