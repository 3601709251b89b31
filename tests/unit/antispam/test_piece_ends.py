"""A body rule runs on each of SpamAssassin's body lines (paragraphs) alone, so an expression
that takes a paragraph's closing newline can still meet the paragraph's end: ``income\\s+$``
hits "DESIRED WEEKLY INCOME" standing as a paragraph of its own (Debian's form rules,
``__FILL_THIS_FORM_LOAN1``, end so). Our engine searches the joined text first; there the
newline is followed by the next paragraph, so the joined search, the RE2 prefilter and the
Hyperscan pass each said "no match" for a paragraph that SpamAssassin matches. The expected
hits are what Debian's spamassassin reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.antispam import hsmatch, re2filter
from gateway_milter.antispam.perlre import parse_perl_regex
from tests.unit.antispam.helpers import assert_rule_hits

RULES = r"""
body T_END_WS /weekly income\s+$/i
score T_END_WS 0.01
body T_END_NOT /weekly income\s(?!\S)/i
score T_END_NOT 0.01
body T_FORM /income(?:[-=_.,:;*\s]){1,100}$/i
score T_FORM 0.01
"""
SCORED = ["T_END_WS", "T_END_NOT", "T_FORM"]
ALL = {"T_END_WS", "T_END_NOT", "T_FORM"}


def _msg(body: bytes) -> bytes:
    return (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\n" + body)


MESSAGES = {
    # a paragraph of its own, more paragraphs after it
    "paragraph": (_msg(b"Dear friend,\r\n\r\nDESIRED WEEKLY INCOME\r\n\r\nmore text here\r\n"), ALL),
    # the last paragraph: the joined text ends there too
    "last": (_msg(b"hello\r\n\r\nDESIRED WEEKLY INCOME\r\n"), ALL),
    # inside a paragraph the next line follows the newline: no hit, for SpamAssassin too
    "inside": (_msg(b"DESIRED WEEKLY INCOME\r\nmore text here\r\n"), set()),
}


def test_a_paragraph_alone_meets_its_end(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)


JOINED = "Dear friend,\nDESIRED WEEKLY INCOME\nmore text here"


def test_the_prefilters_read_the_joined_text_with_every_line_end() -> None:
    """RE2 and Hyperscan read the paragraphs joined: for a rule searched line by line their
    anchors meet every line's ends (a superset), where before they said no."""
    pat, _ = parse_perl_regex(r"/income(?:[-=_.,:;*\s]){1,100}$/i", lines=True)
    pf = re2filter.prefilter(pat, lines=True)
    assert pf is not None and pf.may_match(JOINED) and not pf.exact
    one = re2filter.prefilter(pat)
    assert one is not None and one.exact and not one.may_match(JOINED) and one.may_match("WEEKLY INCOME\n")
    assert pf.may_match("nothing here") is False
    for perl in (r"/\Aincome\s$/i", r"/income\s+\Z/i", r"/income\s+$/i"):
        p, _ = parse_perl_regex(perl, lines=True)
        [entry] = hsmatch.entries_for([("R", "body", p.source, p.flags, True)])
        assert "\\A" not in entry.expression and "\\z" not in entry.expression and "$" not in entry.expression, perl
        assert entry.loose == ""
        [plain] = hsmatch.entries_for([("R", "body", p.source, p.flags, False)])
        assert plain.expression != entry.expression, perl
