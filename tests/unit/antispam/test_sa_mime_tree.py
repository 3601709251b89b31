"""The rules read the MIME tree as SpamAssassin's parser builds it (Message::_parse_normal,
find_parts): a mimeheader rule reads every node, the message and its multipart containers and
message/rfc822 parts too (not the leaves alone: ``multipart/parallel`` and a forwarded
message's ``name=`` were never seen); a message/* part other than rfc822 and global (a bounce's
delivery-status, external-body) is a leaf that is not read as a message: its fields are not
rendered as body text nor counted as text parts, its text is in rawbody. The expected hits are
what Debian's spamassassin 4.0.1 reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import make_ctx, policy, write_rules

RULES = r"""
mimeheader T_PARALLEL Content-Type =~ /multipart\/parallel/
mimeheader T_NAME_NOEXT Content-Type =~ m,\bname\s?=\s?"(?!=\?)[^."]+",i
mimeheader T_MIXED Content-Type =~ /multipart\/mixed/
body T_DSN_BODY /Reporting-MTA/
rawbody T_DSN_RAW /Reporting-MTA/
body T_INNER_BODY /inner body text/
body T_EXTERNAL_BODY /ENCODING mime/
"""
SCORED = ["T_PARALLEL", "T_NAME_NOEXT", "T_MIXED", "T_DSN_BODY", "T_DSN_RAW", "T_INNER_BODY", "T_EXTERNAL_BODY"]
RULES += "".join(f"score {n} 0.01\n" for n in SCORED)
HEAD = (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: tree\r\nMessage-ID: <t1@sender.test>\r\n"
        b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")
NESTED = (HEAD + b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n'
          b"--o\r\nContent-Type: text/plain\r\n\r\nouter text\r\n"
          b'--o\r\nContent-Type: multipart/parallel; boundary="p"\r\n\r\n'
          b"--p\r\nContent-Type: text/plain\r\n\r\nparallel text\r\n--p--\r\n"
          b'--o\r\nContent-Type: message/rfc822; name="forwarded"\r\n\r\n'
          b"From: c@inner.test\r\nSubject: inner\r\n\r\ninner body text\r\n--o--\r\n")
REPORT = (HEAD + b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
          b"--r\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
          b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
          b"Reporting-MTA: dns; mx.sender.test\r\n\r\nFinal-Recipient: rfc822; x@far.test\r\nAction: failed\r\n"
          b'--r\r\nContent-Type: message/external-body; access-type="mail-server"; server="srv@far.test"\r\n\r\n'
          b"Content-Type: text/plain\r\n\r\nENCODING mime\r\n--r--\r\n")
MESSAGES = {"nested": (NESTED, {"T_PARALLEL", "T_NAME_NOEXT", "T_MIXED", "T_INNER_BODY"}),
            "report": (REPORT, {"T_DSN_RAW"})}


def test_the_rules_read_spamassassins_tree(tmp_path: Path) -> None:
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, RULES))]}})
    for name, (raw, expected) in MESSAGES.items():
        assert {s.name for s in make_ctx(raw, pol).layer("rules").symbols} == expected, name
