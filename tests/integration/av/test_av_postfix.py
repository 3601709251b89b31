"""Antivirus and attachment filtering through a real Postfix, the real milter daemon, a real
clamd and a real SMTP sink: refusal with 5xx, admin quarantine instead of delivery, strip and
deliver with a notice, and 4xx when clamd goes away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.mailstack import MailStack, mail_stack
from tests.services import EICAR, clamd_server, wait_until
from tests.unit.av.mailbuild import AMBIGUOUS, b64
from tests.unit.av.test_archives import EXE

pytestmark = pytest.mark.integration

POLICY: dict[str, Any] = {
    "gateway": {"hostname": "mx.example.com"},
    "settings": {"antivirus": {"timeout_s": 10}},
    "domains": [
        {"name": "example.com"},
        {"name": "held.example", "settings": {"antivirus": {"infected_action": "quarantine"}}},
        {"name": "strip.example", "settings": {"attachments": {"action": "strip"}}},
    ],
}


def mail(subject: str, to: str, payload: bytes | None = None, filename: str = "file.bin") -> bytes:
    head = (f"From: Alice <alice@outside.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@outside.test>\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n").encode()
    if payload is None:
        return head + b"Content-Type: text/plain\r\n\r\nJust text.\r\n"
    return (head + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="' + filename.encode() + b'"\r\n\r\n' + b64(payload)
            + b"--b--\r\n")


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with clamd_server(tmp_path_factory.mktemp("clamd-pf")) as srv:
        yield srv


# The layers under test, and the envelope layers every message needs. Other content layers are
# switched off so that this module tests antivirus and attachments, not their neighbours.
KEEP = {"direction", "relay", "lists", "size", "mime", "antivirus", "attachments"}


def policy() -> dict[str, Any]:
    from gateway_milter import layers

    doc = {**POLICY, "settings": dict(POLICY["settings"])}
    for layer_id in layers.available():
        if layer_id not in KEEP:
            doc["settings"][layer_id] = {"mode": "off"}
    return doc


@pytest.fixture(scope="module")
def stack(clamd: dict[str, Any]) -> Iterator[MailStack]:
    with mail_stack({"GATEWAY_CLAMD": f"tcp:127.0.0.1:{clamd['port']},unix:{clamd['socket']}"}) as s:
        s.import_policy(policy())
        yield s


def admin_quarantine(stack: MailStack, subject: str) -> list[str]:
    out = stack.manage("quarantine", "list", "--queue", "admin").stdout
    return [line for line in out.splitlines() if subject in line]


def test_it_delivers_clean_mail(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], mail("av clean", "bob@example.com",
                                                                               b"%PDF-1.4\n", "a.pdf"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: av clean"), timeout=30, what="clean message")


def test_it_refuses_an_infected_message_with_5xx(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], mail("av infected", "bob@example.com", EICAR))
    assert code == 554 and "5.7.1" in text, text
    time.sleep(1)
    assert not stack.sink.find(b"Subject: av infected")


def test_it_quarantines_for_admins_instead_of_delivering(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["erin@held.example"], mail("av held", "erin@held.example", EICAR))
    assert code == 250, text
    wait_until(lambda: admin_quarantine(stack, "av held"), timeout=20, interval=0.5, what="admin quarantine")
    time.sleep(1)
    assert not stack.sink.find(b"Subject: av held")


def test_it_strips_the_attachment_and_delivers_the_rest_with_a_notice(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["sam@strip.example"],
                               mail("av stripped", "sam@strip.example", EXE, "invoice.pdf.exe"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: av stripped"), timeout=30, what="stripped message")
    [m] = stack.sink.find(b"Subject: av stripped")
    leaves = [p for p in m.message.walk() if not p.is_multipart()]
    assert [p.get_filename() for p in leaves] == [None, None]
    notice = leaves[1].get_payload(decode=True).decode()
    assert "invoice.pdf.exe" in notice and "removed" in notice
    assert b64(EXE)[:60].rstrip() not in m.data
    assert m.message["X-Bulwark-Stripped"]
    assert admin_quarantine(stack, "av stripped"), "the original is kept in the admin quarantine"


def test_it_refuses_an_executable_attachment_by_default(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"],
                               mail("av exe", "bob@example.com", EXE, "invoice.pdf.exe"))
    assert code == 554 and "attachment" in text, text


@pytest.mark.parametrize("case", ["duplicate_boundary", "rfc2231_parser_crash"])
def test_it_refuses_eicar_hidden_behind_a_mime_ambiguity(stack: MailStack, case: str) -> None:
    raw = AMBIGUOUS[case].replace(b"To: bob@example.test", b"To: bob@example.com")
    raw = raw.replace(b"Subject: test", b"Subject: av " + case.encode())
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], raw)
    assert code == 554 and "virus" in text, text


def test_it_tempfails_when_clamd_is_gone(stack: MailStack, clamd: dict[str, Any]) -> None:
    # runs last in this module: stops the module's clamd
    clamd["proc"].terminate()
    clamd["proc"].wait(10)
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], mail("av no clamd", "bob@example.com", EICAR))
    assert 400 <= code < 500, (code, text)
    time.sleep(1)
    assert not stack.sink.find(b"Subject: av no clamd")

