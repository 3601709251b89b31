"""The Public Suffix List's lookup on a name of thousands of labels (a hostile host or From
domain; fuzzing through the whole pipeline found one of 32 KB): each candidate suffix was
joined again from its label to the end, time square in the name's length, 1.3 s for 32 KB in
each of the lookups a message makes. Candidates longer than the list's deepest rule are no
longer tried: the same answers, in time linear in the name."""

from __future__ import annotations

import time

import pytest

from gateway_milter.auth import psl


@pytest.mark.parametrize(("tail", "suffix", "org"), [("example.co.uk", "co.uk", "example.co.uk"),
                                                     ("shop.example.com", "com", "example.com"),
                                                     ("x.nosuchtld", "nosuchtld", "x.nosuchtld")])
def test_a_name_of_thousands_of_labels_is_looked_up_in_linear_time(tail: str, suffix: str, org: str) -> None:
    psl.public_suffix("warm.example.com")  # (the list read once)
    name = "a." * 16_000 + tail
    t0 = time.process_time()
    got = psl.public_suffix(name), psl.org_domain(name)
    assert time.process_time() - t0 < 0.2
    assert got == (suffix, org)


def test_the_longest_rules_still_match() -> None:
    deepest = max((r for r in psl._rules()[0]), key=lambda r: r.count("."))
    assert psl.public_suffix("host.example." + deepest) == deepest
    assert psl.org_domain("host.example." + deepest) == "example." + deepest
