"""A base64 HTML body with a mailing list's plain-text footer appended after it (its length no
longer a multiple of four) is decoded as SpamAssassin decodes it (Util::base64_decode): the
body rules read the HTML's text, and the HTML facts are the markup's, not those of the encoded
text. The expected hits are what Debian's spamassassin reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.unit.antispam.helpers import make_ctx, policy, write_rules

RULES = r"""
body T_HELLO /hello there, a short note/i
score T_HELLO 0.01
rawbody T_ENCODED /PGh0bWw/
score T_ENCODED 0.01
"""
SCORED = ["T_HELLO", "T_ENCODED"]
HTML = b"<html><body><p>Hello there, a short note.xx</p></body></html>\r\n"  # (63 bytes: no padding)
MESSAGE = (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
           b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(HTML).replace(b"\n", b"\r\n")
           + b"\r\n\r\n------------------\r\nmailing list footer\r\nhttps://lists.example.org/x\r\n")
SPAMASSASSIN = {"T_HELLO"}


def test_the_html_is_read_decoded(tmp_path: Path) -> None:
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, RULES))]}})
    assert {s.name for s in make_ctx(MESSAGE, pol).layer("rules").symbols} & set(SCORED) == SPAMASSASSIN
