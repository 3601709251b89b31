"""An empty text/html part is not rendered, as in SpamAssassin (Message::Node::rendered renders
HTML only when its decoded text is not empty): it gives no HTML facts, so ``html_test('html')``
(Debian's HTML_MESSAGE) and the HTML length ranges stay false. It was rendered as an empty
document, and a message of empty parts was called an HTML message. The expected hits are what
Debian's spamassassin 4.0.1 reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import make_ctx, policy, write_rules

RULES = """
body T_HTML eval:html_test('html')
body T_HTML_LEN eval:html_range('length', -1, 100000)
"""
SCORED = ["T_HTML", "T_HTML_LEN"]
RULES += "".join(f"score {n} 0.01\\n" for n in SCORED)


def _message(html: bytes) -> bytes:
    return (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: parts\r\nMessage-ID: <h1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            b"--b1\r\nContent-Type: text/plain\r\n\r\nhello there\r\n"
            b"--b1\r\nContent-Type: text/html\r\n\r\n" + html + b"\r\n--b1--\r\n")


MESSAGES = {"empty": (_message(b""), set()),
            "blank_line": (_message(b"\r\n"), set(SCORED)),  # (its text is a newline: rendered)
            "html": (_message(b"<p>hi</p>"), set(SCORED))}


def test_an_empty_html_part_has_no_html_facts(tmp_path: Path) -> None:
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, RULES))]}})
    for name, (raw, expected) in MESSAGES.items():
        assert {s.name for s in make_ctx(raw, pol).layer("rules").symbols} == expected, name
