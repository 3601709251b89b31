"""A message is its sender's domain's business only when it was sent from inside: spam from
outside to one tenant forging MAIL FROM another tenant's address showed that other tenant's
domain administrator (and the forged user) the message, its subject and its recipients."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def _log(log_id: str, direction: str, mail_from: str, rcpt: str, subject: str):  # type: ignore[no-untyped-def]
    from reports.models import MessageLog, MessageRecipient

    m = MessageLog.objects.create(log_id=log_id, time=timezone.now(), direction=direction, mail_from=mail_from,
                                  subject=subject, action="accept")
    MessageRecipient.objects.create(message=m, address=rcpt, domain=rcpt.rpartition("@")[2], action="accept")
    return m


def test_a_forged_local_sender_does_not_show_another_tenants_mail(world: World) -> None:
    forged = _log("forged00000000000000000000000001", "inbound", "user@a.example", "ceo@b.example",
                  "tenant-b-private-subject")
    for role in ("domain_admin", "user"):
        c = world.client(role, "a")
        assert c.get(f"/logging/log/{forged.pk}/").status_code == 404, role
        assert "tenant-b-private-subject" not in c.get("/logging/log/").content.decode(), role
        assert c.get(f"/api/messages/{forged.pk}/").status_code == 404, role
        assert "ceo@b.example" not in str(c.get("/api/dashboard/").json()), role
    # B's own administrator sees it (its recipient is theirs)
    assert world.client("domain_admin", "b").get(f"/logging/log/{forged.pk}/").status_code == 200


def test_mail_the_domain_sent_stays_its_business(world: World) -> None:
    sent = _log("sent0000000000000000000000000001", "outbound", "user@a.example", "partner@remote.test",
                "tenant-a-outbound-subject")
    c = world.client("domain_admin", "a")
    page = c.get(f"/logging/log/{sent.pk}/")
    assert page.status_code == 200 and "partner@remote.test" in page.content.decode()
    assert world.client("user", "a").get(f"/logging/log/{sent.pk}/").status_code == 200
    assert world.client("domain_admin", "b").get(f"/logging/log/{sent.pk}/").status_code == 404
