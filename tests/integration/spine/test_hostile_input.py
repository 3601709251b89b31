"""Hostile input through real Postfix and the real daemon: every message gets a clear SMTP
answer and the daemon keeps serving (a clean message after each batch is delivered)."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator

import pytest

from tests.integration.spine.test_postfix_spine import POLICY, msg
from tests.mailstack import MailStack, mail_stack
from tests.services import shared_path, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[MailStack]:
    with mail_stack() as s:
        s.import_policy(POLICY)
        yield s


def _alive(stack: MailStack, tag: str) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg(f"alive {tag}"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(f"Subject: alive {tag}".encode()), timeout=30, what=f"alive {tag}")


HOSTILE = {
    "malformed_mime": (b"From: a@outside.test\r\nTo: bob@example.com\r\nSubject: broken mime\r\n"
                       b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"\r\n\r\n"
                       b"--\r\nContent-Type: text/plain; charset=\"unterminated\r\n"
                       b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n--x--\r\n"),
    "nul_bytes": b"From: a@outside.test\r\nTo: bob@example.com\r\nSubject: nul\x00bytes\r\n\r\nbody\x00with\x00nuls\r\n",
    "eight_bit_headers": ("From: Jos\u00e9 <a@outside.test>\r\nTo: bob@example.com\r\n"
                          "Subject: caf\u00e9 \u00fcber \u65e5\u672c\r\n\r\n8-bit body \u00e9\r\n").encode("utf-8"),
    "latin1_headers": b"From: a@outside.test\r\nTo: bob@example.com\r\nSubject: \xe9t\xe9 \xff\xfe\r\n\r\nx\r\n",
    "huge_header_block": (b"From: a@outside.test\r\nTo: bob@example.com\r\nSubject: many headers\r\n"
                          + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 40) for i in range(2000)) + b"\r\nbody\r\n"),
    "long_line": b"From: a@outside.test\r\nTo: bob@example.com\r\nSubject: long line\r\n\r\n" + b"A" * 990 + b"\r\n" * 3,
    "deep_multipart": (b"From: a@outside.test\r\nTo: bob@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
                       + b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(150))
                       + b"Content-Type: text/plain\r\n\r\nleaf\r\n"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_it_answers_hostile_messages_and_survives(stack: MailStack, name: str) -> None:
    code, text, _ = stack.send("a@outside.test", ["bob@example.com"], HOSTILE[name])
    assert code == 250 or 400 <= code < 600, (code, text)
    assert code not in (421,), "the milter must not drop the connection"
    _alive(stack, name)


@pytest.mark.slow
def test_it_handles_a_50_megabyte_message(stack: MailStack) -> None:
    line = b"0123456789" * 7 + b"\r\n"  # 72 bytes
    body = line * (50_000_000 // len(line))
    data = b"From: a@outside.test\r\nTo: bob@example.com\r\nSubject: fifty megabytes\r\n\r\n" + body
    t0 = time.monotonic()
    code, text, _ = stack.send("a@outside.test", ["bob@example.com"], data)
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: fifty megabytes"), timeout=120, interval=0.5)
    [m] = stack.sink.find(b"Subject: fifty megabytes")
    assert len(m.data) >= 50_000_000
    assert time.monotonic() - t0 < 120
    stack.sink.clear()
    _alive(stack, "after 50MB")


def test_it_answers_every_message_of_the_mime_corpus(stack: MailStack) -> None:
    corpus = shared_path("corpus", "mime")
    if not corpus.is_dir():
        pytest.skip("../shared/corpus/mime not present")
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    assert len(files) > 100
    answers: dict[int, int] = {}
    with smtplib.SMTP("127.0.0.1", stack.port, timeout=120) as s:
        s.ehlo("client.test")
        for f in files:
            data = f.read_bytes()
            s.rset()
            assert s.mail("a@outside.test")[0] == 250
            assert s.rcpt("bob@example.com")[0] == 250
            try:
                code, _ = s.data(data)
            except smtplib.SMTPDataError as e:
                code = e.smtp_code
            answers[code] = answers.get(code, 0) + 1
    assert sum(answers.values()) == len(files)
    assert set(answers) <= {250, 451, 550, 552, 554}, answers
    assert answers.get(250, 0) >= len(files) * 0.9, answers
    _alive(stack, "after corpus")
