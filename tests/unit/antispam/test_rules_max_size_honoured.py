"""``rules.max_size`` ("bound on the bytes matched") was checked when saved and read nowhere:
every view held 2,000,000 characters whatever it said. It now bounds the view the rules (and
Bayes, which reads the same view, in the milter and in training) match: the decoded text,
rawbody and full, never beyond 2,000,000 (body rules read each part's first 50,000 characters,
as SpamAssassin's body_part_scan_size, whatever the bound)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.saview import MAX_TEXT, message_view, view_limit
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

RULES = ("full LOCAL_TAIL /MARKER_AT_END/\nscore LOCAL_TAIL 3\n"
         "rawbody LOCAL_RTAIL /MARKER_AT_END/\nscore LOCAL_RTAIL 2\n")


@pytest.mark.parametrize(("max_size", "hits"), [(10_000, []), (1_000_000, ["LOCAL_RTAIL", "LOCAL_TAIL"])])
def test_the_rules_match_within_max_size(tmp_path: Path, max_size: int, hits: list[str]) -> None:
    body = ("x" * 70 + " word\r\n") * 4000 + "MARKER_AT_END\r\n"  # the marker at about 300,000 bytes
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, RULES))],
                            "max_size": max_size}})
    ctx = make_ctx(msg("Hi", body), pol)
    assert sorted(s.name for s in ctx.layer("rules").symbols) == hits
    view = message_view(ctx)
    assert len(view.full) <= max_size and view.rawbody_len <= max_size


def test_the_bound_never_passes_the_views_own() -> None:
    assert view_limit(policy({"rules": {"max_size": 20_000_000}})) == MAX_TEXT
    assert view_limit(policy({"rules": {"max_size": 50_000}})) == 50_000
    assert view_limit(policy({})) == 1_000_000  # (the setting's default)
