"""``score NAME 0`` disables a rule, as SpamAssassin's Conf says ("a score of 0 disables the
test"): it does not run, and the metas that read it read it as 0. It still ran for its metas,
so a rule an administrator switched off for its false positives kept scoring through them."""

from __future__ import annotations

from pathlib import Path

from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

RULES = """body LOCAL_SUB /hello/i
score LOCAL_SUB 0
meta LOCAL_M LOCAL_SUB
score LOCAL_M 2
body __SUB2 /hello/i
score __SUB2 0
meta LOCAL_M2 __SUB2
score LOCAL_M2 3
body __SUB3 /hello/i
meta LOCAL_M3 __SUB3 && !LOCAL_SUB
score LOCAL_M3 1.5
body LOCAL_KEPT /world/
score LOCAL_KEPT 0
score LOCAL_KEPT 0.5
"""


def test_a_rule_scored_0_is_off_for_its_metas_too(tmp_path: Path) -> None:
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, RULES))]}})
    res = make_ctx(msg("Hi", "Hello world"), pol).layer("rules")
    # LOCAL_M and LOCAL_M2 read their zeroed rule as 0; LOCAL_M3 reads LOCAL_SUB as 0 (so "!" is
    # true) and its own unscored sub-rule __SUB3 still runs; a score set again later wins
    assert sorted((s.name, s.score) for s in res.symbols) == [("LOCAL_KEPT", 0.5), ("LOCAL_M3", 1.5)]


def test_a_local_zero_switches_off_a_default_rule_and_its_metas(tmp_path: Path) -> None:
    raw = (b"Return-Path: <bounce@sender.test>\r\nFrom: Alice <alice.smith1975@gmail.com>\r\nTo: bob@example.com\r\n"
           b"Subject: Hi\r\nMessage-ID: <6@sender.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n"
           b"Hello Bob, please reply.\r\n")
    base = make_ctx(raw, policy(), mail_from="bounce@sender.test").layer("rules")
    local = policy({"rules": {"rule_dirs": [str(write_rules(tmp_path, "score FREEMAIL_FROM 0\n"))]}})
    off = make_ctx(raw, local, mail_from="bounce@sender.test").layer("rules")
    assert base.has("FREEMAIL_FROM") and base.has("FREEMAIL_FORGED_FROMDOMAIN")  # (a meta reading it)
    assert not off.has("FREEMAIL_FROM") and not off.has("FREEMAIL_FORGED_FROMDOMAIN")
    assert {s.name for s in base.symbols} - {s.name for s in off.symbols} == {"FREEMAIL_FROM",
                                                                           "FREEMAIL_FORGED_FROMDOMAIN"}
