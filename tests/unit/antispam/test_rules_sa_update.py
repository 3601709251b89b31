"""The rules setting ``sa_update``: the default set comes from sa-update's channel directory
once sa-update has written it (as SpamAssassin reads it in place of the packaged rules), the
package's before that and without the setting; an update that appears later is picked up like
any changed file (the old engine answers while the new one builds)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_milter.antispam import engine as engine_module
from gateway_milter.antispam import sarules
from gateway_milter.antispam.engine import RuleEngine, engine_for
from gateway_milter.layers.base import settings_from_dict
from gateway_milter.layers.rules import RulesSettings, engine_from_settings, rule_set_of


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    package, updates = tmp_path / "usr-share-spamassassin", tmp_path / "var-lib" / "updates_spamassassin_org"
    package.mkdir()
    (package / "20_test.cf").write_text("body PACKAGED_RULE /cheap/\nscore PACKAGED_RULE 1\n")
    monkeypatch.setattr(sarules, "PACKAGE_DIR", package)
    monkeypatch.setattr(sarules, "UPDATES_DIR", updates)
    monkeypatch.setattr(sarules, "DEFAULT_DIRS", (package, updates))
    monkeypatch.setattr(engine_module, "RECHECK_S", 0.0)
    monkeypatch.setenv("GATEWAY_RULES_HYPERSCAN", "0")
    # the process's engines as the suite built them (the Debian set's among them) are put back
    # after: engines made from these stand-in directories must not answer for the real ones
    saved = {name: dict(getattr(engine_module, name)) for name in ("_engines", "_build_cpu", "_checked", "_wanted")}
    for name in saved:
        getattr(engine_module, name).clear()
    try:
        yield package, updates
    finally:
        end = time.monotonic() + 20
        while "building" in engine_module._rebuilding.values() and time.monotonic() < end:  # (these dirs)
            time.sleep(0.02)
        for name, kept in saved.items():
            getattr(engine_module, name).clear()
            getattr(engine_module, name).update(kept)


def fetch_update(updates: Path) -> None:
    updates.mkdir(parents=True)
    (updates / "20_test.cf").write_text("body UPDATED_RULE /pills/\nscore UPDATED_RULE 1\n")


def settled(sa_update: bool, rule: str) -> RuleEngine:
    """The engine once it has ``rule``: a rule set whose files changed (or one another test of
    the process built from the real directories) is rebuilt in the background, the old engine
    answering meanwhile."""
    end, eng = time.monotonic() + 20, engine_for(sa_update=sa_update)
    while rule not in eng.rules and time.monotonic() < end:
        time.sleep(0.02)
        eng = engine_for(sa_update=sa_update)
    return eng


def test_it_reads_the_package_until_sa_update_has_run(dirs: tuple[Path, Path]) -> None:
    package, updates = dirs
    assert sarules.default_rule_dirs(True) == [package]
    assert "PACKAGED_RULE" in settled(True, "PACKAGED_RULE").rules
    fetch_update(updates)
    assert sarules.default_rule_dirs(True) == [updates]
    assert sarules.default_rule_dirs(False) == [package]  # off: the package, updates or not
    eng = settled(True, "UPDATED_RULE")
    assert "UPDATED_RULE" in eng.rules and "PACKAGED_RULE" not in eng.rules
    eng = settled(False, "PACKAGED_RULE")
    assert "PACKAGED_RULE" in eng.rules and "UPDATED_RULE" not in eng.rules


def test_an_empty_update_directory_is_not_an_update(dirs: tuple[Path, Path]) -> None:
    package, updates = dirs
    updates.mkdir(parents=True)
    assert sarules.default_rule_dirs(True) == [package]


def test_the_setting_names_its_own_rule_set_and_is_global_only(dirs: tuple[Path, Path]) -> None:
    on = settings_from_dict(RulesSettings, {"sa_update": True})
    assert rule_set_of(on) != rule_set_of(RulesSettings())
    assert rule_set_of(settings_from_dict(RulesSettings, {"sa_update": True, "include_default": False}))[-1] is False
    assert "sa_update" in RulesSettings.global_only_fields
    fetch_update(dirs[1])
    eng = settled(True, "UPDATED_RULE")
    assert engine_from_settings(on) is eng  # the settings name the same rule set
