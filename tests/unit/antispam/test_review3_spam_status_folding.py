"""X-Spam-Status is folded at commas; a test name too long for the first line was put on the
next one alone, leaving ``tests=`` at the end of the first: unfolded, the header then reads
``tests=<TAB>NAME``, and a downstream filter reading ``tests=(\\S+)`` (or a Sieve ``:contains
"tests=NAME"``) finds no tests. SpamAssassin breaks after white space or a comma only, so
``tests=`` stays with its first name."""

from __future__ import annotations

import re

import pytest

from gateway_milter.transforms.spamheaders import status_line

LONG = "T_" + "VERY_LONG_RULE_NAME_" * 2 + "X"


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def test_it_keeps_the_first_test_name_with_tests_equals() -> None:
    line = status_line(True, 1000.0, 5.0, [LONG, "GTUBE"], "no")
    assert "\n" in line
    assert f"tests={LONG},GTUBE " in unfold(line), line
    assert not line.split("\n")[0].endswith("tests=")


def test_a_short_list_still_folds_at_commas() -> None:
    names = [f"RULE_NUMBER_{i}" for i in range(12)]
    line = status_line(True, 9.0, 5.0, names, "no")
    assert line.startswith("Yes, score=9.0 required=5.0 tests=RULE_NUMBER_0,")
    assert "tests=" + ",".join(names) + " autolearn=no" in re.sub(r"\t", " ", unfold(line)).replace(", ", ",")


@pytest.mark.parametrize("tests", [
    [], ["GTUBE"], [f"RULE_NUMBER_{i}" for i in range(12)],
    ["BAYES_99", "BAYES_999", "DKIM_ADSP_NXDOMAIN", "FREEMAIL_FORGED_REPLYTO", "HTML_MESSAGE", "MIME_HTML_ONLY",
     "RDNS_NONE", "SPF_HELO_NONE", "URIBL_MULTI_SURBL_ORG", "T_REMOTE_IMAGE", "SUBJ_ALL_CAPS", "XPRIO"],
])
@pytest.mark.parametrize("autolearn", ["no", "unavailable", "spam"])
def test_no_line_is_over_78_characters_with_the_field_name(tests: list[str], autolearn: str) -> None:
    # the name was not counted and " autolearn=... version=..." came after the folding: 88-100
    line = status_line(True, 23.4, 5.0, tests, autolearn)
    lines = ("X-Spam-Status: " + line).split("\n")
    assert max(len(x.expandtabs(8)) for x in lines) <= 78, lines  # (a tab: 8 columns, as Util::wrap counts it)
    assert all(x.startswith("\t") and x.strip() for x in lines[1:]), lines
    flat = re.sub(r",\s+(?=[A-Z])", ",", re.sub(r"\s+", " ", unfold(line)))
    assert flat == (f"Yes, score=23.4 required=5.0 tests={','.join(tests) or 'none'} "
                    f"autolearn={autolearn} version=Bulwark")
