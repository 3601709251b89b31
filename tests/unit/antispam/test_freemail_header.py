"""FreeMail's ``check_freemail_header`` as SpamAssassin 4.0.1 has it: it reads
``get("$header:addr")`` in list context, so every address of every header of that name, parsed
from the raw values (an encoded word is never an address), and a spec that already ends in
``:addr`` (Debian's ``__smf_freemail_hdr_replyto``) reads the same. The expected hits are what
Debian's spamassassin reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import assert_rule_hits, make_ctx, policy, write_rules

RULES = r"""
freemail_domains gmail.com
header T_FM_RT eval:check_freemail_header('Reply-To')
score T_FM_RT 0.01
header T_FM_RTA eval:check_freemail_header('Reply-To:addr')
score T_FM_RTA 0.01
header T_FM_DT eval:check_freemail_header('Disposition-Notification-To', '\d@')
score T_FM_DT 0.01
"""
SCORED = ["T_FM_RT", "T_FM_RTA", "T_FM_DT"]


def _msg(headers: bytes) -> bytes:
    return (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n" + headers + b"\r\nhello\r\n")


MESSAGES = {
    # the second of two Reply-To fields
    "second_field": (_msg(b"Reply-To: a@example.com\r\nReply-To: joe@gmail.com\r\n"), {"T_FM_RT", "T_FM_RTA"}),
    # the second address of a group
    "group": (_msg(b"Reply-To: grp: a@example.com, joe@gmail.com;\r\n"), {"T_FM_RT", "T_FM_RTA"}),
    # an encoded word that decodes to an address is none
    "encoded_word": (_msg(b"Reply-To: =?us-ascii?q?joe=40gmail.com?=\r\n"), set()),
    "encoded_phrase": (_msg(b"Reply-To: =?us-ascii?q?joe=40gmail.com?= <a@example.com>\r\n"), set()),
    "upper_case": (_msg(b"Reply-To: Joe <JOE@GMAIL.COM>\r\n"), {"T_FM_RT", "T_FM_RTA"}),
    "regex_second": (_msg(b"Disposition-Notification-To: a@example.com, joe1@gmail.com\r\n"), {"T_FM_DT"}),
    "regex_no": (_msg(b"Disposition-Notification-To: joe@gmail.com\r\n"), set()),
}


def test_every_address_of_every_field_is_read(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)


def test_envelope_sender_is_read(tmp_path: Path) -> None:
    rules = (r"freemail_domains gmail.com" "\n"
             r"header T_FM_ENV eval:check_freemail_header('EnvelopeFrom', '\d@')" "\nscore T_FM_ENV 0.01\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, rules))]}})
    raw = _msg(b"")
    hits = {s.name for s in make_ctx(raw, pol, mail_from="joe1@gmail.com").layer("rules").symbols}
    assert "T_FM_ENV" in hits
    assert "T_FM_ENV" not in {s.name for s in make_ctx(raw, pol, mail_from="joe@gmail.com").layer("rules").symbols}
