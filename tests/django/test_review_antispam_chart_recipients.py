"""The dashboard's "Top recipients" chart counts the recipients of the messages the reader may
see: it listed every recipient of those messages, so one message to two tenants showed each
domain's administrators the other tenant's mailbox (which the log, its detail and the API hide),
and a user every other recipient of a message they received (Bcc included)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def _shared_message() -> None:
    from reports.models import MessageLog, MessageRecipient

    m = MessageLog.objects.create(log_id="sharedchart000000000000000000001", time=timezone.now(),
                                  direction="inbound", mail_from="news@sender.test", subject="shared",
                                  action="accept")
    for addr in ("user@a.example", "boss@a.example", "user@b.example"):
        MessageRecipient.objects.create(message=m, address=addr, domain=addr.rpartition("@")[2], action="accept")


def _recipients_chart(c: Any) -> str:
    charts = c.get("/api/dashboard/").json()["charts"]
    return str(next(ch for ch in charts if ch["key"] == "recipients"))


@pytest.mark.parametrize("role", ["domain_admin", "quarantine_admin", "user"])
def test_it_never_shows_another_tenants_recipient(world: World, role: str) -> None:
    _shared_message()
    c = world.client(role)
    chart = _recipients_chart(c)
    assert "user@a.example" in chart
    assert "user@b.example" not in chart
    assert "user@b.example" not in c.get("/dashboard/").content.decode()


def test_a_user_sees_only_their_own_address(world: World) -> None:
    _shared_message()
    assert "boss@a.example" not in _recipients_chart(world.client("user"))


def test_a_global_admin_sees_every_recipient(world: World) -> None:
    _shared_message()
    chart = _recipients_chart(world.client("global_admin"))
    assert "user@b.example" in chart and "boss@a.example" in chart
