"""A multipart whose boundary parameter is there but never found in its body: SpamAssassin's
parser keeps it as a container and makes its body a child leaf without header fields, which
MIMEEval counts as text/plain. Ours counted no text part, so an HTML part beside it made
``MIME_HTML_ONLY`` (rspamd's alternative-empty-related.eml in the odd-MIME differential). So
too a part that is a multipart without a boundary parameter; the message itself without one is
a leaf, and counts as neither. The expected
hits are what Debian's spamassassin reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import assert_rule_hits

RULES = r"""
body T_HTML_ONLY eval:check_for_mime_html_only()
score T_HTML_ONLY 0.01
body T_HTML eval:check_for_mime_html()
score T_HTML 0.01
"""
SCORED = ["T_HTML_ONLY", "T_HTML"]


def _alternative(second: bytes) -> bytes:
    return (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/alternative; boundary="=-alt="\r\n'
            b"\r\n--=-alt=\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<html><body>Hello there</body></html>\r\n"
            + second + b"--=-alt=--\r\n")


MESSAGES = {
    "boundary_never_found": (_alternative(
        b'\r\n--=-alt=\r\nContent-Type: multipart/related; boundary="=-related="\r\n\r\n'
        b"Text in a multipart whose boundary is never used.\r\n\r\n"), {"T_HTML"}),
    "no_boundary_parameter": (_alternative(
        b"\r\n--=-alt=\r\nContent-Type: multipart/related\r\n\r\nText in a multipart without a boundary.\r\n\r\n"),
        {"T_HTML"}),
    "html_alone": (_alternative(b"\r\n"), {"T_HTML", "T_HTML_ONLY"}),
    "message_without_boundary": (
        b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
        b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related\r\n\r\n"
        b"<html><body>Hello there</body></html>\r\n", set()),
}


def test_a_multipart_without_its_boundary_holds_a_text_leaf(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)
