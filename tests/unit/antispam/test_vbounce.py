"""SpamAssassin's VBounce plugin, which Debian loads (v320.pre): 20_vbounce.cf's rules are read
(its ifplugin block was skipped, so its sub-rules such as ``__BOUNCE_CTYPE`` read 0 in
MIME_NO_TEXT, FORM_FRAUD_5 and a dozen other metas), and its evals: ``have_any_bounce_relays``
(a ``welcomelist_bounce_relays`` line names a relay) and ``check_welcomelist_bounce_relays``
(a quoted Received line of the bounce names one: in the body's lines, or in the raw body with
continued header lines joined). The expected hits are what Debian's spamassassin 4.0.1 reported
for these rules and messages (tests/integration/antispam/test_sa_differential.py runs them
again)."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.antispam.sarules import LOADED_PLUGINS
from tests.unit.antispam.helpers import make_ctx, policy, write_rules

EVALS = """
body __MY_SERVERS_FOUND eval:check_welcomelist_bounce_relays()
body __HAVE_BOUNCE_RELAYS eval:have_any_bounce_relays()
meta T_MINE __MY_SERVERS_FOUND
meta T_HAVE __HAVE_BOUNCE_RELAYS
score T_MINE 0.01
score T_HAVE 0.01
"""
SCORED = ["T_MINE", "T_HAVE"]
RELAYS = "welcomelist_bounce_relays mx.example.com\nwhitelist_bounce_relays *.relays.example.com\n"
HEAD = (b"From: MAILER-DAEMON@far.example\r\nTo: bob@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <b1@far.example>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")


def _plain(received: bytes) -> bytes:
    return (HEAD + b"Content-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
            b"> " + received + b"\r\n> From: bob@example.com\r\n")


def _attached(received: bytes) -> bytes:
    return (HEAD + b'Content-Type: multipart/report; report-type=delivery-status; boundary="r1"\r\n\r\n'
            b"--r1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            b"--r1\r\nContent-Type: message/rfc822\r\n\r\n" + received + b"\r\n"
            b"From: bob@example.com\r\nSubject: hello\r\n\r\nhello\r\n--r1--\r\n")


# name -> (rule lines, message, the hits spamassassin -t reported)
CASES = {
    "quoted_line": (EVALS + RELAYS, _plain(b"Received: from pc.example.com by mx.example.com (Postfix) with ESMTP"),
                    {"T_MINE", "T_HAVE"}),
    "folded_header": (EVALS + RELAYS, _attached(b"Received: from pc.example.com\r\n\tby mx.example.com (Postfix)"),
                      {"T_MINE", "T_HAVE"}),
    "glob": (EVALS + RELAYS, _plain(b"Received: from pc.example.com by out1.relays.example.com (Postfix) id 1"),
             {"T_MINE", "T_HAVE"}),
    "other_relay": (EVALS + RELAYS, _attached(b"Received: from pc.example.com\r\n\tby mx.far.example (Exim)"),
                    {"T_HAVE"}),
    "no_relays_set": (EVALS, _plain(b"Received: from pc.example.com by mx.example.com (Postfix) with ESMTP"),
                      set()),
}


def test_vbounce_is_a_loaded_plugin() -> None:
    assert "Mail::SpamAssassin::Plugin::VBounce" in LOADED_PLUGINS


def test_bounce_relays_are_found_as_spamassassin_finds_them(tmp_path: Path) -> None:
    for name, (rules, raw, expected) in CASES.items():
        d = tmp_path / name
        d.mkdir()
        pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(d, rules))]}})
        assert {s.name for s in make_ctx(raw, pol).layer("rules").symbols} & set(SCORED) == expected, name
