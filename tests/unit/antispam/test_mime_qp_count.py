"""MIMEEval's ``mime_qp_count`` and ``mime_qp_long_line``, as SpamAssassin 4.0.1 has them.
``mime_qp_count`` is the number of quoted-printable parts, replaced by the number of
needlessly encoded characters once the parts' lines are read (_check_attachments): Debian's
``__MIME_QP`` (read negated by a dozen scored metas) hits a part that encodes what it need not
(``=41`` for ``A``), not one that encodes only ``=`` or 8-bit text, nor encoded white space that
ends a line. A part's lines end at LF only (a bare CR inside one is no line end). The expected
hits are what Debian's spamassassin reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import make_ctx, policy, write_rules

RULES = """
rawbody __MY_QP eval:check_for_mime('mime_qp_count')
meta T_QP __MY_QP
score T_QP 0.01
rawbody T_QP_LONG eval:check_for_mime('mime_qp_long_line')
score T_QP_LONG 0.01
"""
SCORED = ["T_QP", "T_QP_LONG"]


def _qp(body: bytes) -> bytes:
    return (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: qp\r\nMessage-ID: <q1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            + body + b"\r\n")


MESSAGES = {
    "needed_only": (_qp(b"a =3D b, caf=E9 cr=E8me"), set()),
    "needless": (_qp(b"H=45llo there"), {"T_QP"}),
    "trailing_space": (_qp(b"hello=20\r\nthere=09"), set()),
    # a bare CR inside a line is no line end (SpamAssassin splits a part's lines at LF only): 80
    # characters and the newline make a long QP line
    "bare_cr": (_qp(b"x" * 78 + b"\r=\r\nend"), {"T_QP_LONG"}),
    "short": (_qp(b"x" * 70 + b"=\r\nend"), set()),
}


def test_needlessly_encoded_characters_make_mime_qp(tmp_path: Path) -> None:
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, RULES))]}})
    for name, (raw, expected) in MESSAGES.items():
        assert {s.name for s in make_ctx(raw, pol).layer("rules").symbols} == expected, name
