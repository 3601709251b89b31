"""FreeMail's _parse_body takes the body's ``mailto:`` addresses from the anchors only
(uri_detail_list's type "a"), not from a form's action, an area or a frame: a form that mails
its answers to a freemail address is no freemail "in the body" (Debian's ``FREEMAIL_REPLY``
hit spam_2/00608 here, not in SpamAssassin). The expected hits are what Debian's spamassassin
reported for these rules and messages (tests/integration/antispam/test_sa_differential.py runs
them again)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import assert_rule_hits

RULES = r"""
freemail_domains gmail.com
header T_FM_REPLY eval:check_freemail_replyto('reply')
score T_FM_REPLY 0.01
"""
SCORED = ["T_FM_REPLY"]


def _html(html: bytes) -> bytes:
    return (b"From: Joe <joe@gmail.com>\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
            b"<html><body><p>Write to us</p>" + html + b"</body></html>\r\n")


MESSAGES = {
    "anchor": (_html(b'<a href="mailto:other@gmail.com">here</a>'), {"T_FM_REPLY"}),
    "form": (_html(b'<form action="mailto:other@gmail.com"><input type=submit></form>'), set()),
    "area": (_html(b'<map><area href="mailto:other@gmail.com"></map>'), set()),
}


def test_only_anchors_give_body_addresses(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)
