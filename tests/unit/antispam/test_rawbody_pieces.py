"""SpamAssassin runs a rawbody rule on each piece of a part's decoded text that
Message::split_into_array_of_short_paragraphs cuts (2,048-4,096 characters, ending at a
newline, else a ">", else a space): a long HTML line, as quoted-printable soft breaks make
them, is several pieces. A ``^`` meets each piece's start (Debian's ``__HAS_HREF`` counts
``/^[^>].*?<a href=/im`` once a piece, ``MIXED_HREF_CASE`` compares two such counts), and no
match runs from one piece into the next. The expected hits are what Debian's spamassassin
reported for these rules and messages (tests/integration/antispam/test_sa_differential.py runs
them again)."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.antispam.saview import short_paragraphs
from tests.unit.antispam.helpers import assert_rule_hits

RULES = r"""
rawbody __T_HREF /^[^>].*?<a href=/im
tflags __T_HREF multiple maxhits=100
meta T_HREF_TWO __T_HREF > 1
score T_HREF_TWO 0.01
rawbody T_SPAN /alpha.{0,5000}omega/
score T_SPAN 0.01
rawbody T_NEAR /alpha.{0,40}beta/
score T_NEAR 0.01
"""
SCORED = ["T_HREF_TWO", "T_SPAN", "T_NEAR"]


def _html(line: str) -> bytes:
    return (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <q1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/html; charset=us-ascii\r\n\r\n" + line.encode() + b"\r\n")


# one line of 5,000 characters: a piece ends at the first ">" after 2,048
LONG = ("<p>alpha beta <a href=http://one.example/>one</a> " + "word " * 420 + "</b>next <a href=http://two.example/>two</a> "
        + "more " * 500 + "omega</p>")
SHORT = "<p>alpha beta <a href=http://one.example/>one</a> next <a href=http://two.example/>two</a> omega</p>"
MESSAGES = {
    "long_line": (_html(LONG), {"T_HREF_TWO", "T_NEAR"}),
    "short_line": (_html(SHORT), {"T_SPAN", "T_NEAR"}),
}


def test_a_long_line_is_read_in_pieces(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)


def test_pieces_are_cut_as_spamassassin_cuts_them() -> None:
    assert short_paragraphs("a" * 2048) == ["a" * 2048]
    text = "x" * 2100 + "\n" + "y" * 2100 + ">" + "z" * 3000
    pieces = short_paragraphs(text)
    assert "".join(pieces) == text
    assert pieces[0] == "x" * 2100 + "\n"  # the first newline after 2,048
    assert all(len(p) <= 4096 for p in pieces)
    # no newline, ">" or space within 4,096: 2,049 characters (Perl's piece ends at its index
    # 2,048, inclusive; these lengths are what Message::split_into_array_of_short_paragraphs gives)
    assert [len(p) for p in short_paragraphs("q" * 9000)] == [2049, 2049, 2049, 2853]
    assert [len(p) for p in short_paragraphs(text)] == [2101, 2101, 3000]
