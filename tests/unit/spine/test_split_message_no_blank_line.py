"""A message file whose header section has no empty line before its body (a line that is
neither a header field nor a continuation) is read as Postfix, Sendmail and SpamAssassin read
it: that line ends the header section and starts the body. split_message dropped it, so a
multipart whose first boundary came there lost it: its first part's fields were read as the
message's own (``manage.py scan``, the evaluation, training)."""

from __future__ import annotations

from gateway_milter.pipeline.rawmessage import split_message

MISSING = (b"From: a@sender.test\nSubject: x\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/mixed; boundary="b"\n \n'
           b"--b\nContent-Type: text/html\n\n<p>Hello world</p>\n--b--\n")


def test_a_non_header_line_starts_the_body() -> None:
    headers, body = split_message(MISSING)
    assert [n for n, _ in headers] == ["From", "Subject", "MIME-Version", "Content-Type"]
    assert headers[-1][1] == 'multipart/mixed; boundary="b"\r\n '  # (the white-space line continues it)
    assert body == b"--b\r\nContent-Type: text/html\r\n\r\n<p>Hello world</p>\r\n--b--\r\n"


def test_nothing_is_lost_without_any_empty_line() -> None:
    headers, body = split_message(b"Subject: x\r\nnot a field\r\nmore text")
    assert headers == [("Subject", "x")] and body == b"not a field\r\nmore text"


def test_an_mbox_from_line_before_the_fields_is_skipped() -> None:
    headers, body = split_message(b"From a@b.test Fri Apr 06 16:46:09 2001\nSubject: x\n\nbody\n")
    assert headers == [("Subject", "x")] and body == b"body\r\n"


def test_the_rules_see_the_parts(tmp_path: object) -> None:
    from gateway_milter.antispam.saview import message_view
    from tests.unit.antispam.helpers import make_ctx

    view = message_view(make_ctx(MISSING))
    assert view.has_html and "Hello world" in view.body
