"""Lines of an administrator's rule files are read as SpamAssassin reads them, and a line that is
not read is said: directive names in any case (``Score``, ``BODY``), a UTF-8 byte order mark,
score numbers as SpamAssassin writes them (``1e1``, ``+2``, ``1_5`` refused, the rule keeps its
default), relative scores in parentheses (added to the score set before), an ``if``/``ifplugin``
no ``endif`` closes, and directives the parser does not read (a typo such as ``bdoy`` or
``scroe``) listed by ``rules check``: each was dropped or misread without a word."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.antispam.sarules import load_rules


def _rules(tmp_path: Path, text: str, name: str = "local.cf", bom: bool = False) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return d


def _load(d: Path):  # type: ignore[no-untyped-def]
    return load_rules([d], 2)


def test_directive_names_in_any_case_and_a_bom_are_read(tmp_path: Path) -> None:
    rs = _load(_rules(tmp_path, "BODY LOCAL_A /lottery/\nScore LOCAL_A 2.5\nDescribe LOCAL_A Lottery\n", bom=True))
    assert rs.rules["LOCAL_A"].score == 2.5 and rs.rules["LOCAL_A"].describe == "Lottery"
    assert not rs.line_errors and not rs.ignored


@pytest.mark.parametrize("value", ["1e1", "+2", "1_5", "nan", "inf", "2.", ".5", "0x10"])
def test_a_score_spamassassin_refuses_is_not_read(tmp_path: Path, value: str) -> None:
    rs = _load(_rules(tmp_path, f"body LOCAL_A /lottery/\nscore LOCAL_A {value}\n"))
    assert rs.rules["LOCAL_A"].score == 1.0  # (the default, as in SpamAssassin)
    assert any("cannot read the score line" in rs.unsupported[k] for k in rs.line_errors), rs.line_errors


def test_relative_scores_add_to_the_score_before(tmp_path: Path) -> None:
    rs = _load(_rules(tmp_path, "body LOCAL_A /lottery/\nscore LOCAL_A 2\nscore LOCAL_A (3)\n"
                                "body LOCAL_B /prize/\nscore LOCAL_B 1 1 4 4\nscore LOCAL_B (0) (0) (-1.5) (0)\n"
                                "body LOCAL_C /win/\nscore LOCAL_C (2)\n"))
    assert rs.rules["LOCAL_A"].score == 5.0 and rs.rules["LOCAL_B"].score == 2.5  # (score set 2)
    assert rs.rules["LOCAL_C"].score == 1.0
    assert [rs.unsupported[k] for k in rs.line_errors if "LOCAL_C" in k][0].startswith("a relative score")


def test_an_unclosed_if_block_is_said(tmp_path: Path) -> None:
    rs = _load(_rules(tmp_path, "body LOCAL_A /lottery/\nifplugin Mail::SpamAssassin::Plugin::NotLoaded\n"
                                "body LOCAL_B /prize/\n"))
    assert "LOCAL_A" in rs.rules and "LOCAL_B" not in rs.rules
    [key] = [k for k in rs.line_errors if k.startswith("if ")]
    assert rs.line_errors[key] == "local.cf:2" and "no endif closes" in rs.unsupported[key]
    assert "the rest of the file is skipped" in rs.unsupported[key]
    # and the administrator's rule inside the block of a plugin not loaded is named
    [rule] = [k for k in rs.line_errors if k.startswith("body LOCAL_B")]
    assert rs.line_errors[rule] == "local.cf:3" and "a plugin the gateway does not load" in rs.unsupported[rule]


def test_rules_check_lists_the_lines_it_does_not_read(tmp_path: Path, db: object) -> None:
    d = _rules(tmp_path, "bdoy LOCAL_TYPO /hello/i\nscore LOCAL_TYPO 2\nheader LOCAL_H Subject =~ /Hello/\n"
                         "scroe LOCAL_H 4\nrequired_score 6\nbody LOCAL_OK /world/\n")
    rs = _load(d)
    assert rs.ignored == {"local.cf:1": "bdoy", "local.cf:4": "scroe", "local.cf:5": "required_score"}
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), stdout=out)
    text = out.getvalue()
    assert "3 line(s) of your rule files not read" in text
    assert "bdoy (local.cf:1), scroe (local.cf:4), required_score (local.cf:5)" in text


def test_the_default_sets_own_settings_are_not_listed() -> None:
    rs = load_rules(None, 2)  # (Debian's files carry SpamAssassin settings: lang, report, ...)
    assert rs.ignored == {} and not rs.line_errors


def test_an_if_condition_with_white_space_in_its_call_is_read(tmp_path: Path) -> None:
    # "if plugin (X)": Perl allows the space; the condition was unreadable and its block skipped
    rs = _load(_rules(tmp_path, "if plugin (Mail::SpamAssassin::Plugin::Bayes)\nbody LOCAL_A /lottery/\nendif\n"
                                "if plugin( Mail::Not::Loaded )\nbody LOCAL_B /prize/\nendif\n"))
    assert "LOCAL_A" in rs.rules and "LOCAL_B" not in rs.rules and not rs.line_errors


def test_require_version_of_another_version_skips_the_rest_of_the_file(tmp_path: Path) -> None:
    d = _rules(tmp_path, "body LOCAL_A /lottery/\nrequire_version 3.004006\nbody LOCAL_B /prize/\n")
    (d / "other.cf").write_text("require_version 4.000001\nbody LOCAL_C /win/\n"
                                "require_version @@VERSION@@\nbody LOCAL_D /cash/\n")
    rs = _load(d)
    assert {"LOCAL_A", "LOCAL_C", "LOCAL_D"} <= set(rs.rules) and "LOCAL_B" not in rs.rules
    [key] = rs.line_errors
    assert rs.line_errors[key] == "local.cf:2" and "the rest of the file is skipped" in rs.unsupported[key]


def test_an_escaped_hash_in_a_description_reads_as_a_hash(tmp_path: Path) -> None:
    rs = _load(_rules(tmp_path, "body LOCAL_A /lottery/\ndescribe LOCAL_A Ticket \\#1 wins # a comment\n"))
    assert rs.rules["LOCAL_A"].describe == "Ticket #1 wins"
