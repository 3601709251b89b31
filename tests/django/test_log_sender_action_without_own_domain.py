"""Message log → allow/block sender, as a domain administrator, on their own domain's outbound
mail (no recipient in a domain of theirs): the page and the API said the sender was added to the
list, and nothing was. They now say nothing was added (the API: 400); on inbound mail the entry
goes to the recipients' domain and the answer names it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def _logged(direction: str, rcpt: str, sender: str = "someone@sender.test") -> object:
    from reports.models import MessageLog, MessageRecipient

    m = MessageLog.objects.create(log_id=direction[:3] + "0" * 29, time=timezone.now() - dt.timedelta(minutes=1),
                                  direction=direction, client_ip="10.0.0.5", mail_from=sender,
                                  auth_user=sender if direction == "outbound" else "",
                                  subject="hello", size=10, score=0.0, action="accept", symbols=[], trace=[],
                                  transcript=[])
    MessageRecipient.objects.create(message=m, address=rcpt, domain=rcpt.rpartition("@")[2], action="accept")
    return m


@pytest.mark.parametrize("act", ["allow", "block"])
def test_without_a_recipient_of_theirs_nothing_is_added_and_it_says_so(world: World, act: str) -> None:
    from webadmin.models import ListEntry

    m = _logged("outbound", "friend@external.test", "user@a.example")  # (theirs to see: their user sent it)
    c = world.client("domain_admin", "a")
    before = ListEntry.objects.count()
    r = c.post(f"/api/messages/{m.pk}/action/", {"action": act}, content_type="application/json")  # type: ignore[attr-defined]
    assert r.status_code == 400 and "nothing was added" in str(r.json()), r.content
    r = c.post(f"/logging/log/{m.pk}/action/", {"action": act}, follow=True)  # type: ignore[attr-defined]
    said = [str(x) for x in r.context["messages"]]
    assert any("nothing was added" in x for x in said) and not any("added to the" in x for x in said), said
    assert ListEntry.objects.count() == before


def test_with_a_recipient_of_theirs_the_entry_is_their_domains(world: World) -> None:
    from webadmin.models import ListEntry

    m = _logged("inbound", "user@a.example")
    c = world.client("domain_admin", "a")
    r = c.post(f"/api/messages/{m.pk}/action/", {"action": "block"}, content_type="application/json")  # type: ignore[attr-defined]
    assert r.status_code == 200 and r.json()["result"] == "someone@sender.test added to the block list of a.example"
    e = ListEntry.objects.get(value="someone@sender.test")
    assert e.domain is not None and e.domain.name == "a.example"
