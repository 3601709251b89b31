"""Security → Scan a message (webadmin/scantool.py): the pipeline's verdict on a pasted or
uploaded message, computed in the background with the published policy, shown only to the
account that asked, nothing learned or stored; domain administrators scan for their own
domains only; bad input is refused with the field named; message data is escaped."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from gateway_milter import layers
from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World, page_when_done
from webadmin import scantool

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _message(body: str, to: str = "user@a.example", subject: str = "hello") -> str:
    return (f"From: Sender <someone@sender.test>\nTo: {to}\nSubject: {subject}\n"
            f"Message-ID: <{abs(hash(body))}@sender.test>\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n\n{body}\n")


def quick_policy(data_dir: Path) -> None:
    """Local rules only (the Debian set takes 10-20 s to build) and no layer that asks the
    network or an outside service. (The Chromium test uses it too.)"""
    from webadmin.services import do_publish_policy, do_set_layer_settings

    d = data_dir / "rules"
    d.mkdir(exist_ok=True)
    (d / "local.cf").write_text("body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 6.5\ndescribe LOCAL_PRIZE Mentions a prize\n")
    do_set_layer_settings("rules", {"include_default": False, "rule_dirs": [str(d)]})
    for lid in ("antivirus", "callback"):
        if lid in layers.available():
            do_set_layer_settings(lid, {"mode": "off"})
    do_publish_policy("test")


@pytest.fixture(autouse=True)
def _quick_policy(world: World) -> None:
    quick_policy(world.data_dir)


def _scan(c: Client, **data: Any) -> tuple[str, dict[str, Any]]:
    r = c.post("/security/antispam/scan/", data)
    assert r.status_code == 302, r.content.decode()[:2000]
    token = r["Location"].rstrip("/").rpartition("/")[2]
    for _ in range(200):
        page = c.get(r["Location"])
        assert page.status_code == 200
        if 'data-state="running"' not in page.content.decode():
            break
        time.sleep(0.05)
    return page.content.decode(), scantool.read(token, page.wsgi_request.user.pk) or {}


def test_it_scores_a_pasted_message_and_shows_every_symbol(world: World, store: MemoryStore) -> None:
    c = world.client("global_admin")
    assert b"Scan a message" in c.get("/security/").content
    page, doc = _scan(c, message=_message("you won a prize"), ip="192.0.2.8", helo="mx.sender.test")
    assert doc["state"] == "done" and doc["network"] is False
    res = doc["result"]
    assert res["action"] == "quarantine" and res["score"] >= 6.5
    assert "LOCAL_PRIZE" in [s["name"] for s in res["symbols"]]
    assert 'data-state="done"' in page and 'data-symbol="LOCAL_PRIZE"' in page
    assert re.search(r'id="scan-action">quarantine<', page)
    # nothing learned, nothing logged
    assert BayesClassifier(store).stats()["spam_learned"] == 0
    from reports.models import MessageLog

    assert not MessageLog.objects.filter(subject="hello").exists()


def test_gtube_by_file_upload_and_the_network_switch(world: World) -> None:
    c = world.client("global_admin")
    upload = SimpleUploadedFile("m.eml", _message(GTUBE).encode(), content_type="message/rfc822")
    _page, doc = _scan(c, file=upload, network="on")
    assert doc["network"] is True and doc["result"]["score"] >= 1000
    assert doc["result"]["action"] == "reject"


def test_message_data_is_escaped(world: World) -> None:
    c = world.client("global_admin")
    page, doc = _scan(c, message=_message("a prize <script>alert(1)</script>", subject="<img src=x onerror=alert(2)>"))
    assert doc["state"] == "done"
    assert "<script>alert(1)" not in page and "<img src=x" not in page


@pytest.mark.parametrize(("data", "field_says"), [
    ({"message": "  "}, "Paste a message"),
    ({"message": _message("x"), "ip": "300.1.1.1"}, "not an IPv4 or IPv6 address"),
    ({"message": _message("x"), "sender": "no-at-sign"}, "not an email address"),
    ({"message": _message("x"), "recipients": "a@b.example, bad"}, "&#x27;bad&#x27; is not an email address"),
    ({"message": _message("x"), "helo": "two words"}, "HELO name"),
])
def test_bad_input_is_refused_with_its_reason(world: World, data: dict[str, str], field_says: str) -> None:
    r = world.client("global_admin").post("/security/antispam/scan/", data)
    assert r.status_code == 400 and field_says in r.content.decode()
    assert 'id="scan-error"' in r.content.decode()


def test_a_file_over_the_limit_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scantool, "MAX_MESSAGE", 1000)
    upload = SimpleUploadedFile("big.eml", _message("x" * 2000).encode())
    r = world.client("global_admin").post("/security/antispam/scan/", {"file": upload})
    assert r.status_code == 400 and "larger than" in r.content.decode()


def test_a_domain_admin_scans_for_own_domains_only(world: World) -> None:
    c = world.client("domain_admin", "a")
    r = c.post("/security/antispam/scan/", {"message": _message("x"), "recipients": "user@b.example"})
    assert r.status_code == 400 and "user@b.example is not in a domain you administer" in r.content.decode()
    # no recipient given: the message's To when it is theirs, else their postmaster
    _page, doc = _scan(c, message=_message("a prize", to="user@b.example"))
    assert [r["address"] for r in doc["result"]["recipients"]] == ["postmaster@a.example"]
    _page, doc = _scan(c, message=_message("a prize", to="user@a.example, user@b.example"))
    assert [r["address"] for r in doc["result"]["recipients"]] == ["user@a.example"]


def test_a_scan_is_seen_only_by_who_started_it(world: World) -> None:
    c = world.client("global_admin")
    r = c.post("/security/antispam/scan/", {"message": _message("a prize")})
    url = r["Location"]
    for role in ("domain_admin",):
        assert world.client(role, "a").get(url).status_code == 404
    for who in ("quarantine_admin", "user"):
        assert world.client(who, "a").get(url).status_code in (403, 404)
        assert world.client(who, "a").post("/security/antispam/scan/", {"message": _message("x")}).status_code in (403, 404)
    assert c.get("/security/antispam/scan/not-a-token/").status_code == 404
    assert c.get("/security/antispam/scan/" + "A" * 22 + "/").status_code == 404


def test_network_layers_are_off_in_every_domain_unless_asked() -> None:
    doc = {"settings": {"spf": {"mode": "on", "x": 1}}, "domains": [{"name": "a.example", "settings": {"dkim": {"mode": "on"}}}]}
    out = scantool.without_network_layers(doc)
    assert out["settings"]["spf"] == {"mode": "off", "x": 1} and out["settings"]["dnsbl"] == {"mode": "off"}
    assert out["domains"][0]["settings"]["dkim"] == {"mode": "off"}
    assert doc["settings"]["spf"]["mode"] == "on"  # (a copy)


# -- the API ----------------------------------------------------------------------------------------
def _api_scan(c: Client, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/api/antispam/scan/", body, content_type="application/json")
    assert r.status_code == 202, r.content
    url = r.json()["url"]
    for _ in range(200):
        doc = c.get(url).json()
        if doc["state"] != "running":
            return doc
        time.sleep(0.05)
    raise AssertionError("the scan did not finish")


def test_the_api_scans_text_and_base64(world: World) -> None:
    import base64

    c = world.client("global_admin")
    doc = _api_scan(c, {"message": _message("a prize"), "recipients": ["user@a.example"], "ip": "192.0.2.8"})
    assert doc["state"] == "done" and doc["result"]["action"] == "quarantine" and "owner" not in doc
    assert "LOCAL_PRIZE" in [s["name"] for s in doc["result"]["symbols"]]
    doc = _api_scan(c, {"message_base64": base64.b64encode(_message(GTUBE).encode()).decode()})
    assert doc["result"]["action"] == "reject"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "message"),
    ({"message": "x", "message_base64": "eA=="}, "message"),
    ({"message_base64": "not base64!"}, "message_base64"),
    ({"message": 5}, "message"),
    ({"message": _message("x"), "ip": "nope"}, "ip"),
    ({"message": _message("x"), "recipients": [1, 2]}, "detail"),
    ({"message": _message("x"), "network": "yes"}, "network"),
])
def test_the_api_refuses_bad_input(world: World, body: dict[str, Any], field: str) -> None:
    r = world.client("global_admin").post("/api/antispam/scan/", body, content_type="application/json")
    assert r.status_code == 400 and field in r.json(), r.content


def test_the_api_keeps_scans_to_their_starter_and_roles(world: World) -> None:
    c = world.client("global_admin")
    url = c.post("/api/antispam/scan/", {"message": _message("x")}, content_type="application/json").json()["url"]
    assert world.client("domain_admin", "a").get(url).status_code == 404
    assert world.client("user", "a").get(url).status_code in (403, 404)
    r = world.client("domain_admin", "a").post("/api/antispam/scan/", {"message": _message("x"),
                                                                       "recipients": ["user@b.example"]},
                                                content_type="application/json")
    assert r.status_code == 400 and "recipients" in r.json()


def test_a_paste_over_djangos_request_limit_is_refused_with_advice(world: World, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = world.client("global_admin").post("/security/antispam/scan/", {"message": _message("x" * 5000)})
    assert r.status_code == 400 and "choose it as a file" in r.content.decode()
    upload = SimpleUploadedFile("m.eml", _message("a prize " + "x" * 5000).encode())  # a file is not held to it
    assert world.client("global_admin").post("/security/antispam/scan/", {"file": upload}).status_code == 302


# -- learning from a scanned message ----------------------------------------------------------------
def test_a_scanned_message_is_learned_in_the_scopes_the_admin_holds(world: World, store: MemoryStore) -> None:
    c = world.client("global_admin")
    page, doc = _scan(c, message=_message("cheap pills for you", to="user@a.example"))
    token = re.search(r"/security/antispam/scan/([A-Za-z0-9_-]{22})/learn/", page).group(1)  # type: ignore[union-attr]
    assert (scantool.scans_dir() / f"{token}.eml").stat().st_mode & 0o777 == 0o600
    r = c.post(f"/security/antispam/scan/{token}/learn/", {"label": "spam"}, follow=True)
    assert "Learned as spam in global, dom:a.example." in [str(m) for m in r.context["messages"]]
    assert 'id="scan-learned"' in r.content.decode()
    bc = BayesClassifier(store)
    assert bc.stats("global")["spam_learned"] == 1 and bc.stats("dom:a.example")["spam_learned"] == 1
    # again as ham: the same message moves class, it is not counted twice
    c.post(f"/security/antispam/scan/{token}/learn/", {"label": "ham"})
    assert (bc.stats("global")["spam_learned"], bc.stats("global")["ham_learned"]) == (0, 1)


def test_a_domain_admin_teaches_only_their_domains(world: World, store: MemoryStore) -> None:
    c = world.client("domain_admin", "a")
    page, _doc = _scan(c, message=_message("cheap pills", to="user@a.example"))
    token = re.search(r"/security/antispam/scan/([A-Za-z0-9_-]{22})/learn/", page).group(1)  # type: ignore[union-attr]
    c.post(f"/security/antispam/scan/{token}/learn/", {"label": "spam"})
    bc = BayesClassifier(store)
    assert bc.stats("dom:a.example")["spam_learned"] == 1 and bc.stats("global")["spam_learned"] == 0
    # someone else's scan, a GET, a bad label: nothing learned
    other = world.client("domain_admin", "b")
    assert other.post(f"/security/antispam/scan/{token}/learn/", {"label": "spam"}).status_code == 404
    assert c.get(f"/security/antispam/scan/{token}/learn/").status_code == 405
    r = c.post(f"/security/antispam/scan/{token}/learn/", {"label": "eggs"}, follow=True)
    assert "Choose spam or ham." in [str(m) for m in r.context["messages"]]
    assert bc.stats("dom:a.example")["spam_learned"] == 1


def test_the_api_learns_a_scan(world: World, store: MemoryStore) -> None:
    c = world.client("global_admin")
    r = c.post("/api/antispam/scan/", {"message": _message("cheap pills", to="user@b.example")},
               content_type="application/json")
    url = r.json()["url"]
    while c.get(url).json()["state"] == "running":
        time.sleep(0.05)
    assert c.post(url + "learn/", {"label": "bad"}, content_type="application/json").status_code == 400
    r = c.post(url + "learn/", {"label": "spam"}, content_type="application/json")
    assert r.status_code == 200 and r.json() == {"scopes": ["global", "dom:b.example"]}
    assert BayesClassifier(store).stats("dom:b.example")["spam_learned"] == 1
    assert world.client("domain_admin", "b").post(url + "learn/", {"label": "spam"},
                                                  content_type="application/json").status_code == 404


def test_a_scan_whose_thread_is_gone_ends_with_an_error(world: World) -> None:
    c = world.client("global_admin")
    token = "B" * 22
    scantool._write(token, {"state": "running", "owner": world.root.user.pk, "started": time.time() - 301,
                            "network": False, "size": 10})
    page = c.get(f"/security/antispam/scan/{token}/").content.decode()
    assert 'data-state="error"' in page and "did not finish within 300 s" in page
    assert 'http-equiv="refresh"' not in page


def _wait(c: Client, url: str) -> str:
    return page_when_done(c, url, "scan", 200)


def test_scan_again_uses_the_rules_in_force_now(world: World) -> None:
    """Write a rule, scan again: the same message and settings give the new rule's hit."""
    from webadmin.services import do_publish_policy, do_set_layer_settings

    c = world.client("global_admin")
    page, doc = _scan(c, message=_message("a prize and pizza"), ip="192.0.2.8", helo="mx.sender.test",
                      recipients="user@a.example")
    token = re.search(r"/security/antispam/scan/([A-Za-z0-9_-]{22})/again/", page).group(1)  # type: ignore[union-attr]
    assert 'id="scan-change"' in page
    assert "LOCAL_PIZZA" not in [s["name"] for s in doc["result"]["symbols"]]
    d = world.data_dir / "rules"
    (d / "pizza.cf").write_text("body LOCAL_PIZZA /pizza/\nscore LOCAL_PIZZA 1.5\n")
    do_set_layer_settings("rules", {"include_default": False, "rule_dirs": [str(d)]})
    do_publish_policy("test")
    # (a changed rule file is built in the background while the old set answers: wait for it)
    from gateway_milter.layers.rules import engine_from_settings
    from webadmin.services import current_snapshot

    deadline = time.monotonic() + 20
    while "LOCAL_PIZZA" not in engine_from_settings(current_snapshot().settings_for("rules")).rules:
        assert time.monotonic() < deadline, "the new rule set was not built"
        time.sleep(0.2)
    r = c.post(f"/security/antispam/scan/{token}/again/")
    assert r.status_code == 302 and token not in r["Location"]
    _wait(c, r["Location"])
    new = scantool.read(r["Location"].rstrip("/").rpartition("/")[2], world.root.user.pk)
    assert new is not None and new["state"] == "done"
    assert "LOCAL_PIZZA" in [s["name"] for s in new["result"]["symbols"]]
    assert new["request"] == doc["request"] == {"ip": "192.0.2.8", "helo": "mx.sender.test", "sender": "",
                                                "recipients": ["user@a.example"], "auth": "", "network": False}
    assert round(new["result"]["score"] - doc["result"]["score"], 3) == 1.5
    # a GET, another account's scan, an unknown one: nothing started
    assert c.get(f"/security/antispam/scan/{token}/again/").status_code == 405
    assert world.client("domain_admin", "a").post(f"/security/antispam/scan/{token}/again/").status_code == 404
    assert c.post("/security/antispam/scan/" + "A" * 22 + "/again/").status_code == 404


def test_change_and_scan_fills_the_form_with_the_earlier_input(world: World) -> None:
    c = world.client("global_admin")
    text = _message("a prize for caf\u00e9 lovers")
    _page, doc = _scan(c, message=text, sender="bounce@sender.test", recipients="user@a.example", network="on")
    token = next(f.stem for f in scantool.scans_dir().glob("*.json") if scantool.read(f.stem, world.root.user.pk))
    r = c.get(f"/security/antispam/scan/?from={token}")
    assert r.status_code == 200
    form = r.context["form"]
    assert form["message"] == text and form["sender"] == "bounce@sender.test"
    assert form["recipients"] == "user@a.example" and form["network"] is True
    assert "caf\u00e9 lovers" in r.content.decode()
    assert world.client("domain_admin", "a").get(f"/security/antispam/scan/?from={token}").status_code == 404
    # a message that is not UTF-8 text is left out, with a note to choose the file again
    (scantool.scans_dir() / f"{token}.eml").write_bytes(b"Subject: x\n\n\xff\xfe\n")
    r = c.get(f"/security/antispam/scan/?from={token}")
    assert r.context["form"]["message"] == "" and 'id="scan-left-out"' in r.content.decode()


def test_scan_again_checks_a_domain_admins_recipients_again(world: World) -> None:
    c = world.client("domain_admin", "a")
    page, _doc = _scan(c, message=_message("a prize", to="user@a.example"))
    token = re.search(r"/security/antispam/scan/([A-Za-z0-9_-]{22})/again/", page).group(1)  # type: ignore[union-attr]
    # the administrator no longer holds a.example: the recipient is refused, nothing started
    acct = world.a.accounts["domain_admin"]
    acct.domains.clear()
    before = len(list(scantool.scans_dir().glob("*.json")))
    r = c.post(f"/security/antispam/scan/{token}/again/", follow=True)
    assert any("domain" in str(m) for m in r.context["messages"]), [str(m) for m in r.context["messages"]]
    assert len(list(scantool.scans_dir().glob("*.json"))) == before


def test_the_api_scans_again(world: World) -> None:
    c = world.client("global_admin")
    r = c.post("/api/antispam/scan/", {"message": _message("a prize"), "ip": "192.0.2.9"},
               content_type="application/json")
    url = r.json()["url"]
    assert c.post(url + "again/").status_code in (202, 404)  # (404 while it still runs)
    while c.get(url).json()["state"] == "running":
        time.sleep(0.05)
    r = c.post(url + "again/")
    assert r.status_code == 202 and r.json()["url"] != url
    new = r.json()["url"]
    while (got := c.get(new).json())["state"] == "running":
        time.sleep(0.05)
    assert got["state"] == "done" and got["request"]["ip"] == "192.0.2.9"
    assert "LOCAL_PRIZE" in [s["name"] for s in got["result"]["symbols"]]
    assert world.client("domain_admin", "a").post(url + "again/").status_code == 404


def test_a_scan_while_others_run_is_refused_for_now(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setattr(scantool, "_running", threading.BoundedSemaphore(1))
    scantool._running.acquire()  # as if the most scans this process runs at once were running
    c = world.client("global_admin")
    r = c.post("/api/antispam/scan/", {"message": _message("x")}, content_type="application/json")
    assert r.status_code == 503 and "try again" in r.json()["detail"]
    page = c.post("/security/antispam/scan/", {"message": _message("x")})
    assert page.status_code == 400 and "Other scans are running" in page.content.decode()
    scantool._running.release()
    r = c.post("/api/antispam/scan/", {"message": _message("x")}, content_type="application/json")
    assert r.status_code == 202
    while c.get(r.json()["url"]).json()["state"] == "running":  # (its thread releases the patched slot)
        time.sleep(0.05)


@pytest.mark.parametrize(("text", "ok"), [
    ("user@a.example", True), ("postmaster@localhost", True), ("a+tag@b.example", True),
    ("no-at-sign", False), ("@b.example", False), ("a@", False), ("a b@c.example", False),
    ("<a@b.example>", False), ("a@b@c.example", False), ("a\x00@b.example", False),
    ("x" * 65 + "@b.example", False), ("x@" + "b" * 250 + ".example", False),
])
def test_one_address_rule_for_the_scan_tool_the_cli_and_accounts(text: str, ok: bool) -> None:
    from django.core.management.base import CommandError

    from webadmin.addressing import is_mailbox
    from webadmin.cliargs import envelope_args
    from webadmin.services import AccountError, _check_account_names

    assert is_mailbox(text) is ok
    refused = {
        # (the scan tool and the command line take angle brackets off first: <a@b.example> is a@b.example)
        "scan": _refused(lambda: scantool.parse_request(_message("x").encode(), sender=text), scantool.ScanError)
        or text == "<a@b.example>",
        "account": _refused(lambda: _check_account_names("someone", [text]), AccountError),
        "cli": _refused(lambda: envelope_args(None, text, []), CommandError) or text == "<a@b.example>",
    }
    assert refused == dict.fromkeys(refused, not ok)


def _refused(fn: Any, error: type[Exception]) -> bool:
    try:
        fn()
    except error:
        return True
    return False
