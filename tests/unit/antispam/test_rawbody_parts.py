"""A rawbody rule runs on each text part alone, as SpamAssassin runs it
(Message::get_decoded_body_text_array: each part's pieces are elements of their own): a match
never runs from one part into the next. The rawbody text joined the parts with a newline, so
Debian's ``__CONTENT_AFTER_HTML`` (``/<\\/html>\\s*[a-z0-9]/i``) met the text part after an HTML
part, and a count counted a match across the seam. The expected hits are what Debian's
spamassassin 4.0.1 reported for these rules and this message
(tests/integration/antispam/test_sa_differential.py runs it again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.rules import RulesSettings, engine_from_settings
from tests.unit.antispam.helpers import make_ctx, policy, write_rules

RULES = r"""
rawbody T_AFTER_HTML /<\/html>\s*[a-z0-9]/i
rawbody T_ONE_XY /one\s+xy/
rawbody T_IN_PART /hello<\/p>\s*<\/body>/i
rawbody __XY /x\s*y/
tflags __XY multiple
meta T_XY2 __XY >= 2
meta T_XY3 __XY >= 3
"""
SCORED = ["T_AFTER_HTML", "T_ONE_XY", "T_IN_PART", "T_XY2", "T_XY3"]
RULES += "".join(f"score {n} 0.01\n" for n in SCORED)
MESSAGE = (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: parts\r\nMessage-ID: <p1@sender.test>\r\n"
           b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
           b"--b1\r\nContent-Type: text/html\r\n\r\n<html><body><p>Hello</p>\r\n</body></html>\r\n"
           b"--b1\r\nContent-Type: text/plain\r\n\r\nthanks one xy two x\r\n"
           b"--b1\r\nContent-Type: text/plain\r\n\r\ny three xy\r\n--b1--\r\n")
# across the seams: T_AFTER_HTML (</html> + the next part's "thanks") and a third x..y
SPAMASSASSIN = {"T_ONE_XY", "T_IN_PART", "T_XY2"}


def test_rawbody_rules_keep_to_their_part(tmp_path: Path) -> None:
    d = write_rules(tmp_path, RULES)
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(d)]}})
    assert {s.name for s in make_ctx(MESSAGE, pol).layer("rules").symbols} == SPAMASSASSIN


@pytest.mark.parametrize("lazy", [True, False])
def test_both_paths_count_per_part(tmp_path: Path, lazy: bool) -> None:
    eng = engine_from_settings(RulesSettings(include_default=False, rule_dirs=[str(write_rules(tmp_path, RULES))]))
    values = eng.run(message_view(make_ctx(MESSAGE)), None, lazy=lazy).values
    assert {n for n in SCORED if values.get(n)} == SPAMASSASSIN
    if not lazy:
        assert values["__XY"] == 2


def test_a_single_part_is_one_piece(tmp_path: Path) -> None:
    # within one part a match still runs over lines: "</html>" then content on the next line
    one = MESSAGE.replace(b"</body></html>\r\n--b1", b"</body></html>\r\nmore\r\n--b1")
    d = write_rules(tmp_path, RULES)
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(d)]}})
    assert "T_AFTER_HTML" in {s.name for s in make_ctx(one, pol).layer("rules").symbols}
