"""Quarantine actions answer for every message they were given:

- a bulk request of more than 500 ids is refused whole (API 400 naming ``ids``; the page says
  so and does nothing): before, the ids past the 500th were left out and reported nowhere;
- an id that is not an integer or a string of digits (``true``, ``1.7``) names no message: it
  is reported failed (``int()`` took both for message 1);
- "mark as spam" whose training could not be queued is an error (API 400, the page's error,
  a failure in a bulk count), not "done"."""

from __future__ import annotations

from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db


def _bulk(c: Any, action: str, ids: list[Any]) -> Any:
    return c.post("/api/quarantine/bulk/", {"action": action, "ids": ids}, content_type="application/json")


def test_more_than_500_ids_are_refused_whole(world: World) -> None:
    from quarantine.models import QuarantinedMessage

    c = world.client("domain_admin")
    pk = world.a.qmessage.pk
    r = _bulk(c, "delete", [pk] + list(range(10_000, 10_500)))
    assert r.status_code == 400 and "ids" in r.json(), r.content
    assert QuarantinedMessage.objects.filter(pk=pk).exists()
    r = c.post("/messages/quarantine/bulk/", {"action": "delete", "ids": [pk] + list(range(10_000, 10_500))},
               follow=True)
    assert "At most 500 messages at a time: nothing was done." in [str(m) for m in r.context["messages"]]


@pytest.mark.parametrize("bad", [True, 1.7, [1], {"id": 1}, "1.0", " "])
def test_an_id_that_is_no_integer_names_no_message(world: World, bad: Any) -> None:
    c = world.client("global_admin")
    r = _bulk(c, "spam", [bad])
    assert r.status_code == 200 and r.json() == {"done": 0, "failed": [bad]}, r.content


def test_training_that_could_not_be_queued_is_an_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from quarantine import actions

    monkeypatch.setattr(actions, "train", lambda *a, **k: False)
    c = world.client("global_admin")
    pk = world.a.qmessage.pk
    r = c.post(f"/api/quarantine/{pk}/act/", {"action": "spam"}, content_type="application/json")
    assert r.status_code == 400 and "could not queue training" in str(r.json()), r.content
    assert _bulk(c, "spam", [pk]).json() == {"done": 0, "failed": [pk]}
    r = c.post(f"/messages/quarantine/{pk}/action/", {"action": "spam"}, follow=True)
    got = [(m.level_tag, str(m)) for m in r.context["messages"]]
    assert any(tag == "error" and "could not queue training" in text for tag, text in got), got
