"""A rule directory's files are read as SpamAssassin reads them: names ending in ``.cf`` in any
case, regular files only. A symbolic link that leads nowhere (Emacs's lock ``.#local.cf`` while
``local.cf`` is being edited) or a directory named ``x.cf`` was read as a rule file: the rule
set failed to build and every message was tempfailed; ``*.CF`` files were not read."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.antispam.sarules import rule_files
from gateway_milter.layers.rules import RulesSettings
from tests.unit.antispam.helpers import make_ctx, msg, policy


def _dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "local.cf").write_text("body LOCAL_A /lottery/\nscore LOCAL_A 2.0\n")
    (d / "MORE.CF").write_text("body LOCAL_B /prize/\nscore LOCAL_B 1.5\n")
    (d / ".#local.cf").symlink_to("root@host.12345:1700000000")  # (dangling, as Emacs makes it)
    (d / "x.cf").mkdir()
    (d / "notes.txt").write_text("body LOCAL_C /lottery/\n")
    return d


def test_only_regular_cf_files_are_rule_files(tmp_path: Path) -> None:
    assert [f.name for f in rule_files(_dir(tmp_path))] == ["MORE.CF", "local.cf"]


def test_the_rule_set_builds_and_the_layer_answers(tmp_path: Path) -> None:
    d = _dir(tmp_path)
    RulesSettings(include_default=False, rule_dirs=(str(d),))  # (saving the setting is accepted)
    ctx = make_ctx(msg("Hi", "you won the lottery prize"),
                   policy({"rules": {"include_default": False, "rule_dirs": [str(d)]}}))
    res = ctx.layer("rules")
    assert res.error is None and not res.skipped
    assert sorted((s.name, s.score) for s in res.symbols) == [("LOCAL_A", 2.0), ("LOCAL_B", 1.5)]
