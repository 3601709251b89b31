"""A message delivered to a BATV-tagged recipient (a bounce of the user's own mail) is logged
under the plain address it is delivered to: the user sees it in their message log, and a held
tagged recipient's row links to its quarantine entry (it was logged as ``prvs=...=user@``: the
user could not see it, and the row named no quarantine entry)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.layers.backscatter import sign
from gateway_milter.store import set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World
from tests.unit.sieve.helpers import only_layers
from tests.unit.spine.conftest import make_gateway

DSN = (b"From: MAILER-DAEMON@remote.test\r\nTo: user@a.example\r\nSubject: Undelivered Mail\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
       b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n--b--\r\n")


def _record(sender: str, rcpt: str, raw: bytes) -> dict[str, Any]:
    settings = only_layers("lists", "direction", "relay", "backscatter")
    settings["backscatter"] = {"mode": "on"}
    doc = {"settings": settings, "trusted_networks": [],
           "domains": [{"name": "a.example", "settings": {"lists": {"block_action": "quarantine"}}}],
           "lists": [{"list": "block", "kind": "sender", "value": "*@spam.test"}]}
    gw, _q, sink = make_gateway(doc)
    ctx = gw.begin(ConnectionInfo(client_ip="203.0.113.9", helo="mx.remote.test", client_name="mx.remote.test"))
    gw.mail(ctx, sender)
    assert gw.rcpt(ctx, rcpt).action == "continue"
    head, body = raw.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        n, _, v = line.decode().partition(": ")
        ctx.add_header(n, v)
    ctx.body.write(body)
    gw.eom(ctx)
    gw.finish(ctx)
    return sink.records[-1]


def test_a_tagged_recipients_message_is_logged_under_its_plain_address(world: World,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.adapters import django_store
    from gateway_milter.adapters.django_store import write_log_batch

    # (the milter's writer closes stale connections; here that would be the test's transaction)
    monkeypatch.setattr(django_store, "close_old_connections", lambda: None)
    from reports.models import MessageRecipient
    from webadmin.access import messages_visible_to

    store = MemoryStore()
    set_default_store(store)
    try:
        tagged = sign("user@a.example", store)
        bounce = _record("", tagged, DSN)
        held = _record("spam@spam.test", sign("user@a.example", store), b"From: spam@spam.test\r\nSubject: re\r\n\r\nhi\r\n")
    finally:
        set_default_store(None)
    assert bounce["action"] == "accept" and held["action"] == "quarantine"
    write_log_batch([bounce, held])
    user = world.a.accounts["user"].user
    visible = set(messages_visible_to(user).values_list("log_id", flat=True))
    assert {bounce["log_id"], held["log_id"]} <= visible
    rows = list(MessageRecipient.objects.filter(message__log_id=held["log_id"]).values("address", "quarantine_id"))
    assert rows == [{"address": "user@a.example", "quarantine_id": rows[0]["quarantine_id"]}] and rows[0]["quarantine_id"]
