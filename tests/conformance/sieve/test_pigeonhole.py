"""Pigeonhole's own test suite, through our vnd.dovecot.testsuite (docs/policy/sieve.md).

The minimums are the pass counts recorded in docs/policy/sieve.md: a change that makes any
extension pass fewer test blocks fails here. Every remaining failure is listed, with its reason,
in that page.
"""

from __future__ import annotations

import pytest

from tests.conformance.sieve.pigeonhole import run_all
from tests.services import shared_path

# extension -> (passing test blocks at least, total blocks)
MINIMUM = {
    "core (RFC 5228)": (79, 79), "body": (25, 25), "date": (21, 21), "editheader": (38, 40),
    "encoded-character": (8, 8), "envelope": (8, 8), "environment": (5, 5), "ihave": (4, 4),
    "imap4flags": (25, 25), "include": (22, 22), "index": (7, 7), "mailbox": (7, 7),
    "mime/foreverypart/extracttext": (57, 58), "regex": (9, 9), "reject": (3, 3), "relational": (23, 24),
    "spamtest/spamtestplus/virustest": (30, 30), "subaddress": (15, 15), "variables": (60, 60),
}


@pytest.fixture(scope="module")
def results() -> dict[str, list]:  # type: ignore[type-arg]
    root = shared_path("conformance/sieve/pigeonhole")
    if not root.is_dir():
        pytest.skip("../shared/conformance/sieve/pigeonhole not present")
    return run_all(root)


@pytest.mark.parametrize("ext", sorted(MINIMUM))
def test_it_passes_pigeonhole_blocks(ext: str, results: dict[str, list]) -> None:  # type: ignore[type-arg]
    rs = results[ext]
    passed = [r for _, r in rs if r.passed]
    failed = [f"{f} :: {r.name} :: {r.reason}" for f, r in rs if not r.passed]
    least, total = MINIMUM[ext]
    assert len(rs) == total, f"the suite has {len(rs)} blocks for {ext}, docs say {total}"
    assert len(passed) >= least, "\n".join(failed)


def test_it_passes_95_percent_overall(results: dict[str, list]) -> None:  # type: ignore[type-arg]
    allr = [r for rs in results.values() for _, r in rs]
    assert sum(r.passed for r in allr) >= 0.95 * len(allr)
