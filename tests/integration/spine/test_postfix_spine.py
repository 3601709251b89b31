"""The spine through a real Postfix, the real milter daemon and a real SMTP sink."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.mailstack import MailStack, mail_stack
from tests.services import wait_until

pytestmark = pytest.mark.integration

POLICY: dict[str, Any] = {
    "gateway": {"hostname": "mx.example.com"},
    # clamd is not part of this stack (the AV tier starts its own); DNS points at a dead port.
    "settings": {"lists": {"block_action": "refuse", "reject_text": "Go away, {what} not welcome here"},
                 "antivirus": {"mode": "off"},
                 # with DNS dead, clean test mail scores 2.5 (SPF_NONE, SENDER_DOMAIN_NO_MX): learned as ham
                 "bayes": {"autolearn_ham": 5.0}},
    "domains": [{"name": "example.com"}, {"name": "quarantined.example", "settings": {"lists": {"block_action": "quarantine"}}}],
    "trusted_networks": ["10.0.0.0/8"],
    "lists": [
        {"list": "block", "kind": "sender", "value": "*@spammer.test"},
        {"list": "block", "kind": "recipient", "value": "nobody@example.com"},
        {"list": "block", "kind": "sender", "value": "bad@quarantine.test", "domain": "quarantined.example"},
    ],
}


def msg(subject: str, body: str = "Hello there.\r\n", sender: str = "alice@outside.test", to: str = "bob@example.com") -> str:
    return (f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@outside.test>\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n\r\n{body}")


@pytest.fixture(scope="module")
def stack() -> Iterator[MailStack]:
    with mail_stack() as s:
        s.import_policy(POLICY)
        yield s


def test_it_delivers_a_clean_message_with_the_gateway_headers(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("clean one"))
    assert code == 250, text
    [m] = stack.sink.wait_for(1) and stack.sink.find(b"Subject: clean one")
    assert m.rcpts == ["bob@example.com"]
    result = m.message["X-Bulwark-Result"]
    assert result.startswith("accept; score=") and "host=mx.example.com" in result
    assert "id=" in result and "symbols=" in result


def test_it_removes_forged_gateway_headers(stack: MailStack) -> None:
    forged = msg("forged headers").replace("Subject:", "X-Bulwark-Result: accept; forged\r\nSubject:")
    code, _, _ = stack.send("alice@outside.test", ["bob@example.com"], forged)
    assert code == 250
    wait_until(lambda: stack.sink.find(b"Subject: forged headers"), timeout=30)
    [m] = stack.sink.find(b"Subject: forged headers")
    values = m.message.get_all("X-Bulwark-Result")
    assert len(values) == 1 and "forged" not in values[0]


def test_it_refuses_a_blocked_sender_with_the_chosen_text(stack: MailStack) -> None:
    code, text, refused = stack.send("eve@spammer.test", ["bob@example.com"], msg("spam", sender="eve@spammer.test"))
    assert code == 550
    assert "5.7.1 Go away, sender not welcome here" in text


def test_it_refuses_one_blocked_recipient_and_delivers_the_others(stack: MailStack) -> None:
    rcpts = ["carol@example.com", "nobody@example.com", "dave@example.com"]
    code, text, refused = stack.send("alice@outside.test", rcpts, msg("three rcpts"))
    assert code == 250, text
    assert list(refused) == ["nobody@example.com"] and refused["nobody@example.com"][0] == 550
    wait_until(lambda: stack.sink.find(b"Subject: three rcpts"), timeout=30)
    delivered = sorted(r for m in stack.sink.find(b"Subject: three rcpts") for r in m.rcpts)
    assert delivered == ["carol@example.com", "dave@example.com"]


def test_it_quarantines_then_releases_through_the_reinjection_listener(stack: MailStack) -> None:
    code, text, _ = stack.send("bad@quarantine.test", ["erin@quarantined.example"],
                               msg("held for review", sender="bad@quarantine.test", to="erin@quarantined.example"))
    assert code == 250, text
    time.sleep(1.5)
    assert not stack.sink.find(b"Subject: held for review")  # stored, not delivered
    listing = stack.manage("quarantine", "list").stdout
    line = next(line for line in listing.splitlines() if "held for review" in line)
    qid = line.split()[0]
    assert "erin@quarantined.example(held)" in line
    out = stack.manage("quarantine", "release", qid).stdout
    assert "released to erin@quarantined.example" in out
    wait_until(lambda: stack.sink.find(b"Subject: held for review"), timeout=30, what="released message")
    [m] = stack.sink.find(b"Subject: held for review")
    assert m.rcpts == ["erin@quarantined.example"]
    again = stack.manage("quarantine", "release", qid, check=False)
    assert again.returncode != 0 and "nothing to release" in again.stderr


def test_it_logs_every_message_including_refusals_before_data(stack: MailStack) -> None:
    stack.send("eve@spammer.test", ["bob@example.com"], msg("logged refusal", sender="eve@spammer.test"))
    code, _, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("logged accept"))
    assert code == 250

    def find() -> list[dict[str, Any]]:
        return [r for r in stack.log_records() if r["mail_from"] in ("eve@spammer.test", "alice@outside.test")]

    wait_until(lambda: any(r["subject"] == "logged accept" for r in find()), timeout=20, interval=0.5)
    recs = find()
    refused = [r for r in recs if r["mail_from"] == "eve@spammer.test"]
    assert refused and refused[-1]["action"] == "reject" and refused[-1]["recipients"][0]["action"] == "reject"
    acc = next(r for r in recs if r["subject"] == "logged accept")
    assert acc["action"] == "accept" and acc["direction"] == "inbound" and acc["client_ip"] == "127.0.0.1"
    assert acc["helo"] == "client.test" and acc["message_id"] == "<logged-accept@outside.test>"
    assert acc["size"] > 100 and acc["queue_id"]
    assert any(t["source"] == "lists" for t in acc["trace"])
    assert any(line.startswith("MAIL FROM:<alice@outside.test>") for line in acc["transcript"])


def test_it_picks_up_a_policy_change_within_five_seconds_without_restart(stack: MailStack) -> None:
    doc = {**POLICY, "lists": POLICY["lists"] + [{"list": "block", "kind": "sender", "value": "newly@blocked.test"}]}
    t0 = time.monotonic()
    stack.import_policy(doc, wait=False)
    # no SIGHUP here: the poller alone must pick it up
    deadline = t0 + 5.0
    while time.monotonic() < deadline:
        code, _, _ = stack.send("newly@blocked.test", ["bob@example.com"], msg("policy change", sender="newly@blocked.test"))
        if code == 550:
            break
        time.sleep(0.25)
    assert code == 550, "the new block entry was not in force within 5 s"
    stack.import_policy(POLICY)


def test_it_tempfails_when_the_milter_dies_mid_stream_and_delivers_the_retry(stack: MailStack) -> None:
    import smtplib

    worker = stack.worker_pid()
    body = msg("killed milter", body="line of body text\r\n" * 2000).encode()
    with smtplib.SMTP("127.0.0.1", stack.port, timeout=60) as s:
        s.ehlo("client.test")
        assert s.mail("alice@outside.test")[0] == 250
        assert s.rcpt("bob@example.com")[0] == 250
        s.putcmd("data")
        assert s.getreply()[0] == 354
        s.send(body[: len(body) // 2])  # the milter is killed while the body streams
        time.sleep(0.3)
        os.kill(worker, signal.SIGKILL)
        s.send(body[len(body) // 2:] + b".\r\n")
        code, text = s.getreply()
    assert 400 <= code < 500, (code, text)
    wait_until(lambda: stack.worker_pid() != worker, timeout=20, what="worker restart")
    wait_until(lambda: "ready on" in stack.milter_log().rsplit("exited", 1)[-1], timeout=30, what="milter ready")
    deadline = time.monotonic() + 30
    while True:
        code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("killed milter"))
        if code == 250 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: killed milter"), timeout=30)
    assert len(stack.sink.find(b"Subject: killed milter")) == 1


def test_it_tempfails_when_a_layer_raises() -> None:
    with mail_stack({"GATEWAY_FAULT_INJECT": "lists"}) as s:
        s.import_policy(POLICY)
        code, text, refused = s.send("alice@outside.test", ["bob@example.com"], msg("layer exception"))
        assert 400 <= code < 500, (code, text)
        time.sleep(1)
        assert not s.sink.messages
        # the daemon survived and still answers
        code2, _, _ = s.send("alice@outside.test", ["bob@example.com"], msg("second try"))
        assert 400 <= code2 < 500


def test_it_answers_4xx_itself_when_a_layer_hangs_past_the_budget() -> None:
    with mail_stack({"GATEWAY_FAULT_INJECT": "size:hang", "GATEWAY_EOM_BUDGET": "2",
                     "GATEWAY_RCPT_BUDGET": "2"}) as s:
        s.import_policy(POLICY)
        t0 = time.monotonic()
        code, text, _ = s.send("alice@outside.test", ["bob@example.com"], msg("hanging layer"))
        took = time.monotonic() - t0
        # size is judged at RCPT (20 s budget) and again at end of message (2 s here)
        assert 400 <= code < 500, (code, text)
        assert took < 10, took
        assert not s.sink.messages


def test_it_shuts_down_cleanly_on_sigterm_and_keeps_the_log(stack: MailStack) -> None:
    # runs last on the module's stack: it stops the daemon
    time.sleep(2.0)  # what earlier tests autolearned is written (the learner waits 1 s for a batch)
    learned = json.loads(stack.manage("bayes", "stats").stdout)["ham_learned"]
    code, _, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("before shutdown"))
    assert code == 250
    assert stack.milter is not None
    t0 = time.monotonic()
    stack.milter.send_signal(signal.SIGTERM)
    rc = stack.milter.wait(30)
    assert rc == 0 and time.monotonic() - t0 < 30
    assert "milter stopped; flushing the message log" in stack.milter_log()
    assert any(r["subject"] == "before shutdown" for r in stack.log_records())
    # the ham it autolearned (in the background, a batch at a time) was written before it exited
    stats = json.loads(stack.manage("bayes", "stats").stdout)
    assert stats["ham_learned"] == learned + 1 and stats["token_model_ham"] == stats["ham_learned"]
    assert re.search(r"bayes autolearn: \d+ queued, [1-9]\d* learned in \d+ batches, 0 dropped", stack.milter_log())
    # with the milter gone Postfix answers 4xx (milter_default_action = tempfail): nothing accepted unfiltered
    code, _, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("after shutdown"))
    assert 400 <= code < 500
