"""GTUBE in a base64 or quoted-printable part is found in the decoded body. The scoring layer
leaves that to the rules layer when it ran, since SpamAssassin's GTUBE rule reads the decoded
body; but a rule set of the administrator's own (``rules.include_default`` off) has no GTUBE
rule, and an encoded test mail then scored 0."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gateway_milter.layers.scoring import GTUBE
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

BODY = b"Hello,\n" + GTUBE + b"\nbye\n"


@pytest.mark.parametrize(("cte", "encoded"), [("base64", base64.encodebytes(BODY)),
                                              ("quoted-printable", BODY.replace(b"*", b"=2A"))])
def test_it_finds_an_encoded_gtube_with_a_rule_set_without_one(tmp_path: Path, cte: str, encoded: bytes) -> None:
    assert GTUBE not in encoded
    rules = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]}, "scoring": {"layers": ["rules"]}})
    ctx = make_ctx(msg("Test", encoded.decode(), headers=f"Content-Transfer-Encoding: {cte}\r\n"), pol)
    res = ctx.layer("scoring")
    assert not ctx.layer("rules").skipped
    assert "GTUBE" in res.fact("tests") and res.fact("score") >= 1000


def test_a_rule_set_that_skips_gtube_still_leaves_it_out(tmp_path: Path) -> None:
    # an administrator's skip_rules: GTUBE is the rule set's to judge, not the scoring layer's
    rules = write_rules(tmp_path, "body GTUBE /XJS\\*C4JDBQADN1/\nscore GTUBE 1000\n"
                                  "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)], "skip_rules": ["GTUBE"]},
                  "scoring": {"layers": ["rules"]}})
    ctx = make_ctx(msg("Test", base64.encodebytes(BODY).decode(), headers="Content-Transfer-Encoding: base64\r\n"), pol)
    assert "GTUBE" not in ctx.layer("scoring").fact("tests")
