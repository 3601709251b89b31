"""``Name:raw`` header rules read all that follows the colon, as SpamAssassin's do (checked with
Debian's spamassassin 4.0.1 on this message: tests/integration/antispam/test_sa_header_spacing.py):
``Date:raw =~ /^\\t/`` (Debian's __KB_DATE_CONTAINS_TAB) fires for a date written after a tab,
and ``ALL:raw`` lists each field as written; decoded values and ``ALL`` keep one space."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import make_ctx, policy, write_rules

RULES = """
header T_DATE_TAB Date:raw =~ /^\\t/
header T_DATE_SP Date:raw =~ /^ /
header T_SUBJ_LEAD Subject =~ /^ /
header T_SUBJRAW_LEAD Subject:raw =~ /^ /
header T_SUBJRAW_2LEAD Subject:raw =~ /^  x/
header T_TO_A To:raw =~ /^a/
header T_FROM_A From:raw =~ /^a/
header T_ALL_TAB ALL =~ /\\nDate:\\t/
header T_ALL_SP ALL =~ /\\nSubject:  x/
header T_ALLRAW_SP ALL:raw =~ /\\nSubject:  x/
header T_ALLRAW_TAB ALL:raw =~ /\\nDate:\\tFri/
"""
RULES += "".join(f"score {line.split()[1]} 0.01\n" for line in RULES.strip().splitlines())
MESSAGE = (b"From:a@example.com\r\nTo: a@example.org\r\nSubject:  x\r\nDate:\tFri, 4 Dec 2026 10:00:00 +0000\r\n"
           b"Message-ID: <1@example.com>\r\n\r\nbody\r\n")
# what spamassassin -t reported for this message and these rules
SPAMASSASSIN = {"T_DATE_TAB", "T_SUBJRAW_LEAD", "T_SUBJRAW_2LEAD", "T_FROM_A", "T_ALLRAW_SP", "T_ALLRAW_TAB"}


def hits(tmp_path: Path, raw: bytes) -> set[str]:
    d = write_rules(tmp_path, RULES)
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(d)]}})
    return {s.name for s in make_ctx(raw, pol).layer("rules").symbols}


def test_raw_values_start_with_what_follows_the_colon(tmp_path: Path) -> None:
    assert hits(tmp_path, MESSAGE) == SPAMASSASSIN


def test_the_usual_space_is_part_of_the_raw_value(tmp_path: Path) -> None:
    usual = MESSAGE.replace(b"From:a", b"From: a").replace(b"Subject:  x", b"Subject: x").replace(b"Date:\t", b"Date: ")
    assert hits(tmp_path, usual) == {"T_DATE_SP", "T_SUBJRAW_LEAD"}
