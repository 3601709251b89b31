"""What a header rule matches ends as SpamAssassin's does: each field's value with its newline
(Check.pm joins the values by nothing when the first ends with one), a ``:raw`` value with the
spaces and tabs that end the field; addresses and names without one. Debian's ``__XM_RANDOM``
(``X-Mailer =~ /q(?!...)[^u]/i``) meets the newline after an X-Mailer's last "Q". A decoded
value is trimmed before its encoded words are decoded, so the spaces an encoded word holds at
either end stay (Node::header; BodyEval's ``tvd_vertical_words`` counts the Subject's). The expected
hits are what Debian's spamassassin reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import make_ctx, policy, write_rules

RULES = r"""
header T_XM_Q X-Mailer =~ /q[^u]/i
score T_XM_Q 0.01
header T_CC_SPACE Cc:raw =~ /^ $/
score T_CC_SPACE 0.01
header T_SUBJ_TRAIL Subject:raw =~ /\S\s\s$/
score T_SUBJ_TRAIL 0.01
header T_TWO X-Two =~ /one\ntwo\n/
score T_TWO 0.01
header T_ADDR_NL From:addr =~ /\n/
score T_ADDR_NL 0.01
header T_ADDR_END From:addr =~ /example$/
score T_ADDR_END 0.01
header T_EW_SPACE X-EW =~ /^ x $/
score T_EW_SPACE 0.01
"""
SCORED = ["T_XM_Q", "T_CC_SPACE", "T_SUBJ_TRAIL", "T_TWO", "T_ADDR_NL", "T_ADDR_END", "T_EW_SPACE"]

MESSAGE = (b"From: A <a@sender.example>\r\nTo: bob@example.com\r\nCc: \r\nSubject: cheap  \r\n"
           b"Message-ID: <q1@sender.example>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
           b"X-Mailer: 2DgDIOn5nwogS5Q\r\nX-Two: one\r\nX-Two: two\r\nX-EW: =?utf-8?q?_x_?= \r\n\r\nhello\r\n")
SPAMASSASSIN = {"T_XM_Q", "T_CC_SPACE", "T_SUBJ_TRAIL", "T_TWO", "T_ADDR_END", "T_EW_SPACE"}


def test_values_end_as_spamassassin_reads_them(tmp_path: Path) -> None:
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, RULES))]}})
    assert {s.name for s in make_ctx(MESSAGE, pol).layer("rules").symbols} & set(SCORED) == SPAMASSASSIN
