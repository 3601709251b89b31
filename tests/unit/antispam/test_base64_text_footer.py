"""A text part's base64 followed, after its padding, by a mailing list's footer (the corpus's
spam_2/00960, a list appending to a message whose closing boundary it did not recognise):
the standard library stops at the padding, SpamAssassin's Util::base64_decode drops what is
not in the alphabet and decodes the footer's letters too, so the rules read bytes after
``</html>`` that ours did not (``HTML_IMAGE_RATIO_04`` hit there by a text 540 characters
shorter). A text part is now decoded as SpamAssassin decodes it (``sa_base64``); an attachment
keeps the standard library's bytes, the file as sent, for the antivirus and its hashes. The
expected hits are what Debian's spamassassin reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

import base64
from pathlib import Path

from gateway_milter.antispam.evaluate import make_context
from gateway_milter.mime.ambiguity import sa_base64
from gateway_milter.policy.snapshot import PolicySnapshot
from tests.unit.antispam.helpers import assert_rule_hits

RULES = r"""
rawbody T_AFTER_HTML /<\/html>[^\s<]/
score T_AFTER_HTML 0.01
rawbody T_HELLO /Hello there/
score T_HELLO 0.01
"""
SCORED = ["T_AFTER_HTML", "T_HELLO"]
HTML = b"<html><body><p>Hello there, friend</p></body></html>"
FOOTER = (b"\n\n-------------------------------------------------------\nThis list is sponsored by: Example\n"
          b"http://lists.example/listinfo/sightings\n")


def _msg(ctype: bytes, data: bytes) -> bytes:
    return (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: ' + ctype + b"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(data) + FOOTER.replace(b"\n", b"\r\n"))


MESSAGES = {
    "html_with_footer": (_msg(b"text/html; charset=us-ascii", HTML), {"T_AFTER_HTML", "T_HELLO"}),
}


def test_a_text_part_is_decoded_footer_and_all(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)


def test_an_attachment_keeps_the_bytes_as_sent() -> None:
    data = b"%PDF-1.4 a document" * 5
    ctx = make_context(_msg(b"application/pdf", data), PolicySnapshot.empty())
    assert [p.payload for p in ctx.mime.parts if p.content_type == "application/pdf"] == [data]
    text = make_context(_msg(b"text/html; charset=us-ascii", HTML), PolicySnapshot.empty())
    got = [p.payload for p in text.mime.parts if p.content_type == "text/html"]
    assert got == [sa_base64(base64.b64encode(HTML) + FOOTER.replace(b"\n", b"\r\n"))] and got[0].startswith(HTML)
