"""Security → Scan a message scans a bounce with the null sender when the sender is ``<>``, as
``manage.py scan --from '<>'`` does: the field refused ``<>``, and an empty one is the message's
Return-Path or From (MAILER-DAEMON@...), so the backscatter layer, which judges only mail with
the null sender, never ran in the tool and an unsigned bounce the gateway refuses read "accept"."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World
from tests.django.test_scan_tool import _scan, quick_policy

pytestmark = pytest.mark.django_db

DSN = ("Return-Path: <>\nFrom: Mail Delivery System <MAILER-DAEMON@mx.remote.test>\nTo: user@a.example\n"
       "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
       "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
       "--B\nContent-Type: text/plain\n\nThis is the mail system.\n\n"
       "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.remote.test\n\n"
       "Final-Recipient: rfc822; nobody@remote.test\nAction: failed\nStatus: 5.1.1\n\n--B--\n")


def _api_scan(c: Any, **data: Any) -> dict[str, Any]:
    r = c.post("/api/antispam/scan/", {"message": DSN, "ip": "192.0.2.8", "recipients": ["user@a.example"], **data},
               content_type="application/json")
    assert r.status_code == 202, r.content
    for _ in range(400):
        d: dict[str, Any] = c.get(r.json()["url"]).json()
        if d["state"] != "running":
            return d
        time.sleep(0.05)
    raise AssertionError("the scan did not finish")


def test_the_null_sender_is_scanned_as_a_bounce(world: World, store: MemoryStore) -> None:
    from webadmin.services import do_set_layer_settings

    quick_policy(world.data_dir)
    do_set_layer_settings("backscatter", {"mode": "on"})
    c = world.client("global_admin")
    d = _api_scan(c, sender="<>")
    assert d["result"]["action"] == "reject", d["result"]
    assert "Bounce" in d["result"]["recipients"][0]["reply"] or "BATV" in str(d["result"]), d["result"]
    # empty: the sender read from the message (not a bounce to the backscatter layer), as before
    assert _api_scan(c, sender="")["result"]["action"] != "reject"
    # <address> in brackets is the address
    assert _api_scan(c, sender="<someone@sender.test>")["state"] == "done"
    # the page, as a domain administrator; the stored request keeps <> (a scan made again is a bounce too)
    _page, doc = _scan(world.client("domain_admin", "a"), message=DSN, sender="<>", recipients="user@a.example")
    assert doc["result"]["action"] == "reject" and doc["request"]["sender"] == "<>"
