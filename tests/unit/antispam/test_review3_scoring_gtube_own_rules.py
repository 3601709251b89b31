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


def _gtube_rules(tmp_path: Path, skip: tuple[str, ...] = ()) -> dict[str, object]:
    rules = write_rules(tmp_path, "body GTUBE /XJS\\*C4JDBQADN1\\.NSBN3\\*2IDNEN\\*GTUBE-STANDARD-ANTI-UBE-TEST"
                                  "-EMAIL\\*C\\.34X/\nscore GTUBE 1000\n")
    return {"rules": {"include_default": False, "rule_dirs": [str(rules)], "skip_rules": list(skip)},
            "scoring": {"layers": ["rules"]}}


ATTACHED = ("--b\r\nContent-Type: text/plain\r\n\r\nOur anti-spam test file is attached.\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=gtube.bin\r\n\r\n"
            + GTUBE.decode() + "\r\n--b--\r\n")


@pytest.mark.parametrize("where", ["header", "attachment", "skipped rule"])
def test_where_the_rule_set_looked_its_answer_stands(tmp_path: Path, where: str) -> None:
    # the raw bytes were searched first: 1000 points, refused, while the rules' GTUBE did not fire
    if where == "header":
        raw = msg("Test", "Nothing special here.", headers=f"X-Test-String: {GTUBE.decode()}\r\n")
    elif where == "attachment":
        raw = msg("Test", ATTACHED, ctype='multipart/mixed; boundary="b"')
    else:
        raw = msg("Test", "Hello,\r\n" + GTUBE.decode() + "\r\n")
    ctx = make_ctx(raw, policy(_gtube_rules(tmp_path, ("GTUBE",) if where == "skipped rule" else ())))
    res = ctx.layer("scoring")
    assert not ctx.layer("rules").skipped and not ctx.layer("rules").has("GTUBE")
    assert "GTUBE" not in res.fact("tests") and res.fact("score") < 5


def test_the_rule_set_still_finds_it_in_the_body_and_the_layer_without_one(tmp_path: Path) -> None:
    raw = msg("Test", "Hello,\r\n" + GTUBE.decode() + "\r\n")
    ctx = make_ctx(raw, policy(_gtube_rules(tmp_path)))
    assert ctx.layer("rules").has("GTUBE") and ctx.layer("scoring").fact("score") >= 1000
    # no rule set among the scored layers: the scoring layer looks itself, in the raw bytes too
    ctx = make_ctx(msg("Test", "Nothing here.", headers=f"X-Test-String: {GTUBE.decode()}\r\n"),
                   policy({"scoring": {"layers": ["bayes"]}}))
    assert "GTUBE" in ctx.layer("scoring").fact("tests")
