"""Anti-spam through a real Postfix and the real milter daemon: greylisting (first attempt
451 4.7.1, retry after the delay delivered), GTUBE refused by the score threshold, and
SpamAssassin-style headers on delivered mail (a forged X-Spam-Flag removed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.mailstack import MailStack, mail_stack
from tests.services import wait_until

pytestmark = pytest.mark.integration

POLICY: dict[str, Any] = {
    "gateway": {"hostname": "mx.example.com"},
    "settings": {
        "antivirus": {"mode": "off"},
        "rules": {"mode": "off"},  # the Debian rule set is covered by the unit tier; keep this stack fast
        "greylist": {"mode": "off"},
    },
    "domains": [{"name": "example.com"},
                {"name": "grey.example", "settings": {"greylist": {"mode": "on", "delay": 2, "retry_window": 600}}}],
}
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def msg(subject: str, body: str = "Hello there.\r\n", to: str = "bob@example.com") -> str:
    return (f"From: Alice <alice@outside.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@outside.test>\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            f"X-Spam-Flag: YES\r\n\r\n{body}")


@pytest.fixture(scope="module")
def stack() -> Iterator[MailStack]:
    with mail_stack() as s:
        s.import_policy(POLICY)
        yield s


def test_it_greylists_the_first_attempt_and_delivers_the_retry(stack: MailStack) -> None:
    code, text, refused = stack.send("alice@outside.test", ["carol@grey.example"], msg("grey one", to="carol@grey.example"))
    assert code == 451 and "4.7.1" in text and "Greylisted" in text, text
    code, text, _ = stack.send("alice@outside.test", ["carol@grey.example"], msg("grey one", to="carol@grey.example"))
    assert code == 451, "a retry before the delay is still deferred"
    time.sleep(2.5)
    code, text, _ = stack.send("alice@outside.test", ["carol@grey.example"], msg("grey one", to="carol@grey.example"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: grey one"), timeout=30)


def test_it_does_not_greylist_domains_without_it(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("not grey"))
    assert code == 250, text


def test_it_refuses_gtube_and_labels_delivered_mail(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("gtube", GTUBE + "\r\n"))
    assert code == 550 and "rejected as spam" in text, text
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("labelled"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: labelled"), timeout=30)
    [m] = stack.sink.find(b"Subject: labelled")
    assert m.message.get_all("X-Spam-Flag") is None  # the sender's forged flag is gone
    status = m.message["X-Spam-Status"]
    assert status is not None and status.startswith("No, score=") and "required=5.0" in status


def test_it_signs_outbound_envelope_senders_with_batv_through_chgfrom() -> None:
    doc = {"gateway": {"hostname": "mx.example.com"},
           "settings": {"antivirus": {"mode": "off"}, "rules": {"mode": "off"}, "backscatter": {"mode": "on"}},
           "domains": [{"name": "example.com"}], "trusted_networks": ["127.0.0.0/8"]}
    with mail_stack() as s:
        s.import_policy(doc)
        code, text, _ = s.send("alice@example.com", ["carol@remote.test"], msg("outbound batv", to="carol@remote.test"))
        assert code == 250, text
        wait_until(lambda: s.sink.find(b"Subject: outbound batv"), timeout=30)
        [m] = s.sink.find(b"Subject: outbound batv")
        assert m.mail_from.startswith("prvs=1") and m.mail_from.endswith("=alice@example.com"), m.mail_from
        # the bounce of that message comes back to the tagged address: accepted, and delivered to
        # alice herself; a bounce without the tag (backscatter of a forgery) is refused
        dsn = ("From: MAILER-DAEMON@remote.test\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
               'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
               "--b\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n--b--\r\n")
        code, text, _ = s.send("", [m.mail_from], dsn.format(to=m.mail_from, subject="real bounce").encode())
        assert code == 250, text
        wait_until(lambda: s.sink.find(b"Subject: real bounce"), timeout=30)
        [b] = s.sink.find(b"Subject: real bounce")
        assert b.rcpts == ["alice@example.com"], b.rcpts
        code, text, _ = s.send("", ["alice@example.com"], dsn.format(to="alice@example.com", subject="forged").encode())
        assert code == 550, text
