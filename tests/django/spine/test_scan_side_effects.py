"""``manage.py scan`` stores nothing, with or without ``--greylist``: no Bayes learning, no
spam-trap mark, no greylisting triplet. ``--greylist`` judges greylisting from the live state
(what the gateway would answer now) without recording the attempt."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command

from gateway_milter import layers
from gateway_milter.antispam.learner import BackgroundLearner
from gateway_milter.layers.greylist import GreylistSettings, decide
from gateway_milter.store.memory import MemoryStore

pytestmark = pytest.mark.django_db

IP = "198.51.100.9"
NET = "198.51.100.0/24"
KEPT = ("lists", "size", "direction", "relay", "spamtrap", "greylist", "bayes", "scoring")


@pytest.fixture()
def learned(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    items: list[Any] = []

    def submit(self: BackgroundLearner, store: Any, item: Any) -> bool:
        items.append(item)
        return True

    monkeypatch.setattr(BackgroundLearner, "submit", submit)
    return items


def publish(tmp_path: Path, **more: dict[str, Any]) -> None:
    settings: dict[str, Any] = {lid: {"mode": "off"} for lid in layers.available() if lid not in KEPT}
    settings["spamtrap"] = {"mode": "on", "addresses": ["trap@example.com"], "train_bayes": True}
    settings["greylist"] = {"mode": "on", "delay": 300, "exempt_recipients": ["trap@example.com"]}
    settings["bayes"] = {"mode": "on", "autolearn": True}
    settings.update(more)
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"settings": settings, "domains": [{"name": "example.com"}]}))
    call_command("policy", "import", str(f), stdout=io.StringIO())


def scan(tmp_path: Path, rcpt: str, *extra: str, sender: str = "a@x.test") -> dict[str, Any]:
    eml = tmp_path / "m.eml"
    eml.write_bytes(f"From: {sender}\r\nTo: {rcpt}\r\nSubject: s\r\n\r\nbuy now\r\n".encode())
    out = io.StringIO()
    call_command("scan", "--json", "--ip", IP, "--from", sender, "--rcpt", rcpt, *extra, str(eml), stdout=out)
    row: dict[str, Any] = json.loads(out.getvalue().splitlines()[0])
    return row


def names(row: dict[str, Any]) -> set[str]:
    return {s["name"] for s in row["symbols"]}


def test_it_skips_greylisting_by_default(tmp_path: Path, store: MemoryStore, learned: list[Any]) -> None:
    publish(tmp_path)
    row = scan(tmp_path, "bob@example.com")
    assert row["action"] == "accept" and not names(row) & {"GREYLIST_DEFER", "GREYLIST_PASS"}
    assert store.scan_keys("grey:") == []


def test_it_greylists_with_the_switch_and_records_nothing(tmp_path: Path, store: MemoryStore,
                                                           learned: list[Any]) -> None:
    publish(tmp_path)
    for _ in range(2):  # nothing recorded: the second scan is a first attempt too
        row = scan(tmp_path, "bob@example.com", "--greylist")
        assert row["action"] == "tempfail" and "451" in json.dumps(row), row
    assert store.scan_keys("grey:") == []
    assert learned == []


def test_it_answers_from_the_gateway_state_with_the_switch(tmp_path: Path, store: MemoryStore,
                                                           learned: list[Any]) -> None:
    publish(tmp_path)
    s = GreylistSettings(delay=300)
    # the gateway saw this triplet's first attempt ten minutes ago: a retry now passes
    assert decide(store, NET, "a@x.test", "bob@example.com", s, time.time() - 600).state == "new"
    before = {k: store.get(k) for k in store.scan_keys("grey:")}
    row = scan(tmp_path, "bob@example.com", "--greylist")
    assert row["action"] == "accept" and "GREYLIST_PASS" in names(row), row
    assert {k: store.get(k) for k in store.scan_keys("grey:")} == before  # the pass is not recorded


@pytest.mark.parametrize("extra", [(), ("--greylist",)])
def test_it_neither_marks_nor_learns_from_a_spam_trap_hit(tmp_path: Path, store: MemoryStore, learned: list[Any],
                                                          extra: tuple[str, ...]) -> None:
    publish(tmp_path)
    row = scan(tmp_path, "trap@example.com", *extra)
    assert "SPAMTRAP" in names(row)
    assert store.get(f"trap:ip:{IP}") is None
    assert learned == []  # neither the trap's training nor autolearn


@pytest.mark.parametrize("extra", [(), ("--greylist",)])
def test_it_does_not_sign_outbound_senders(tmp_path: Path, store: MemoryStore, learned: list[Any],
                                           extra: tuple[str, ...]) -> None:
    publish(tmp_path, backscatter={"mode": "on"})
    row = scan(tmp_path, "carol@remote.test", "--auth", "alice", *extra, sender="alice@example.com")
    assert row["direction"] == "outbound" and "BATV_SIGNED" not in names(row), row
    assert store.get("batv:keys") is None  # not even a key made


@pytest.mark.parametrize(("args", "says"), [
    (("--ip", "999.1.1.1"), "--ip '999.1.1.1' is not an IPv4 or IPv6 address"),
    (("--rcpt", "bad"), "--rcpt 'bad' is not an email address"),
    (("--from", "x@"), "--from 'x@' is not an email address"),
])
def test_bad_arguments_are_a_clear_error(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    from django.core.management.base import CommandError

    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@x.test\r\nTo: b@example.com\r\nSubject: s\r\n\r\nhi\r\n")
    with pytest.raises(CommandError) as e:
        call_command("scan", *args, str(eml), stdout=io.StringIO())
    assert str(e.value) == says


def test_the_null_sender_and_bracketed_addresses_are_taken(tmp_path: Path, store: MemoryStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.pipeline.transaction import Gateway

    publish(tmp_path)
    senders: list[str] = []
    mail = Gateway.mail
    monkeypatch.setattr(Gateway, "mail", lambda self, ctx, sender, *a, **k: (senders.append(sender),
                                                                             mail(self, ctx, sender, *a, **k))[1])
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@x.test\r\nTo: b@example.com\r\nSubject: s\r\n\r\nhi\r\n")
    out = io.StringIO()
    call_command("scan", "--json", "--ip", " 198.51.100.9 ", "--from", "<>", "--rcpt", "<b@example.com>", str(eml),
                 stdout=out)
    row = json.loads(out.getvalue().splitlines()[0])
    assert [r["address"] for r in row["recipients"]] == ["b@example.com"]
    assert senders == [""]  # (not the From header's address)


def test_it_makes_no_callout_and_leaves_no_cached_answer(tmp_path: Path, store: MemoryStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A corpus scored offline probed every forged sender's mail servers and left each answer
    in the live gateway's callout cache (a "fail" refused that sender's real mail for an hour)."""
    from gateway_milter.layers import callback

    calls: list[str] = []

    def callout(sender: str, *a: Any, **k: Any) -> Any:
        calls.append(sender)
        return callback.CalloutResult("fail")

    monkeypatch.setattr(callback, "callout", callout)
    monkeypatch.setattr(callback.CallbackLayer, "_hosts", lambda self, ctx, domain, settings: ["192.0.2.25"])
    publish(tmp_path, callback={"mode": "on", "fail_action": "refuse"})
    row = scan(tmp_path, "bob@example.com")
    assert calls == [] and store.scan_keys("cb:") == []
    assert "CALLBACK_FAIL" not in {s["name"] for s in row["symbols"]}
    store.set("cb:a@x.test", "fail", 3600)  # (what the live gateway found: read, as it would answer)
    row = scan(tmp_path, "bob@example.com")
    assert "CALLBACK_FAIL" in {s["name"] for s in row["symbols"]} and calls == []


def test_a_file_that_is_not_mail_is_said_and_not_scored(tmp_path: Path, store: MemoryStore,
                                                        learned: list[Any]) -> None:
    from django.core.management.base import CommandError

    publish(tmp_path)
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "1.eml").write_bytes(b"From: a@x.test\r\nTo: bob@example.com\r\nSubject: s\r\n\r\nhi\r\n")
    (d / "README").write_bytes(b"These messages were collected in May.\n")
    (d / "empty.eml").write_bytes(b"")
    (d / f"name{chr(27)}[2Jclear.eml").write_bytes(b"From: a@x.test\r\nSubject: s\r\n\r\nhi\r\n")
    out, err = io.StringIO(), io.StringIO()
    call_command("scan", "--ip", IP, str(d), stdout=out, stderr=err)  # (a directory: said, scanned on)
    scored = [line.split(": ", 1)[0] for line in out.getvalue().splitlines() if not line.startswith(" ")]
    assert scored == [f"{d}/1.eml", f"{d}/name\\x1b[2Jclear.eml"]  # (no raw escape reaches the terminal)
    assert "README: not a mail message" in err.getvalue() and "empty.eml: not a mail message" in err.getvalue()
    with pytest.raises(CommandError, match="not a mail message"):  # (a file named alone: an error)
        call_command("scan", "--ip", IP, str(d / "README"), stdout=io.StringIO(), stderr=io.StringIO())
