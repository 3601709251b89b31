"""A leaf's type as SpamAssassin's Util::parse_content_type reads it decides what the body rules
see: ``TEXT/PLAIN charset=US-ASCII`` (the ";" missing) is text/plain, where the standard
library keeps "text/plain charset=us-ascii" and the part was not rendered (Debian's
``EMPTY_MESSAGE`` then hit a message full of text, spam_2/00204); and every type that starts
with "text" but vCards, calendars and HTML is rendered as text/plain (text/enriched,
text/x-anything). The expected hits are what Debian's spamassassin reported for these rules and
messages (tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import assert_rule_hits

RULES = r"""
body T_WORD /romanian software/i
score T_WORD 0.01
body __T_NONEMPTY /\S/
tflags __T_NONEMPTY nosubject
meta T_EMPTY !__T_NONEMPTY
score T_EMPTY 0.01
"""
SCORED = ["T_WORD", "T_EMPTY"]


def _msg(ctype: bytes) -> bytes:
    return (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: " + ctype + b"\r\n\r\n"
            b"Romanian Software Production & Export\r\n")


# a multipart whose delimiters do not match its boundary (a space more): read as one text
NO_BOUNDARY = (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
               b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
               b'Content-Type: multipart/alternative; boundary="=Multipart Boundary 0925021429"\r\n\r\n'
               b"This is a multipart MIME message.\r\n\r\n--= Multipart Boundary 0925021429\r\n"
               b'Content-Type: text/plain;\r\n\tcharset="ISO-8859-1"\r\n\r\n'
               b"Romanian Software Production & Export\r\n\r\n--= Multipart Boundary 0925021429--\r\n")
MESSAGES = {
    "boundary_never_found": (NO_BOUNDARY, {"T_WORD"}),
    "no_semicolon": (_msg(b"TEXT/PLAIN charset=US-ASCII"), {"T_WORD"}),
    "enriched": (_msg(b"text/enriched"), {"T_WORD"}),
    "x_text": (_msg(b"text/x-something; charset=us-ascii"), {"T_WORD"}),
    "calendar": (_msg(b"text/calendar"), {"T_EMPTY"}),
    "octets": (_msg(b"application/octet-stream"), {"T_EMPTY"}),
}


def test_parts_are_typed_as_spamassassin_types_them(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)
