"""A rule set whose first build fails (a rule file the milter may not read) is not built again
for every message: each try parsed the whole set (10-30 s of CPU for Debian's, under the lock
every other message waits on) before the rules layer tempfailed it. Messages within
FAILED_RETRY_S get the remembered error at once; then one tries again, and a set mended
meanwhile builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam import engine as engine_module
from gateway_milter.antispam import sarules
from gateway_milter.antispam.engine import engine_for


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "RECHECK_S", 0.0)
    monkeypatch.setenv("GATEWAY_RULES_HYPERSCAN", "0")


def test_a_failed_first_build_is_remembered_then_tried_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "local.cf").write_text("body FIRST_BUILD_RULE /cheap/\nscore FIRST_BUILD_RULE 1\n")
    dirs = (str(tmp_path),)
    real = sarules.load_rules
    calls: list[int] = []

    def unreadable(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append(1)
        raise PermissionError(13, "Permission denied", str(tmp_path / "local.cf"))

    monkeypatch.setattr(engine_module, "load_rules", unreadable)
    with pytest.raises(PermissionError):
        engine_for(dirs, include_default=False)
    for _ in range(5):  # the next messages: the remembered error, no new build
        with pytest.raises(Exception, match="Permission denied"):  # (RuleBuildError)
            engine_for(dirs, include_default=False)
    assert len(calls) == 1
    # the file is mended and the retry time has come: one build, and it answers
    monkeypatch.setattr(engine_module, "load_rules", real)
    monkeypatch.setattr(engine_module, "FAILED_RETRY_S", 0.0)
    eng = engine_for(dirs, include_default=False)
    assert "FIRST_BUILD_RULE" in eng.rules
