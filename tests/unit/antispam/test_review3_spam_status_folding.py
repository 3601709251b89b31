"""X-Spam-Status is folded at commas; a test name too long for the first line was put on the
next one alone, leaving ``tests=`` at the end of the first: unfolded, the header then reads
``tests=<TAB>NAME``, and a downstream filter reading ``tests=(\\S+)`` (or a Sieve ``:contains
"tests=NAME"``) finds no tests. SpamAssassin breaks after white space or a comma only, so
``tests=`` stays with its first name."""

from __future__ import annotations

import re

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
    assert "tests=" + ",".join(names) + " autolearn=no" in unfold(line).replace(",\t", ",")
