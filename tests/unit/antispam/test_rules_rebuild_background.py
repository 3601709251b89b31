"""When a rule file changes, the engine built from the old files keeps answering while the new
one builds in a background thread (messages used to wait for the whole build, under the lock,
inside the rules layer); a rebuild that fails leaves the old engine in use."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gateway_milter.antispam import engine as engine_module
from gateway_milter.antispam.engine import RuleEngine, engine_for, rebuild_status


@pytest.fixture(autouse=True)
def look_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "RECHECK_S", 0.0)
    monkeypatch.setenv("GATEWAY_RULES_HYPERSCAN", "0")


def write(d: Path, text: str, bump: int) -> None:
    f = d / "local.cf"
    f.write_text(text)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))  # a new stamp each time


def status(d: Path) -> list[str]:
    """This directory's background rebuilds (other tests' may be listed too)."""
    return [v for k, v in rebuild_status().items() if str(d) in str(k)]


def wait_for_other(dirs: tuple[str, ...], old: RuleEngine, timeout: float = 20.0) -> RuleEngine:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        eng = engine_for(dirs, include_default=False)
        if eng is not old:
            return eng
        time.sleep(0.02)
    raise AssertionError(f"no new engine within {timeout} s: {rebuild_status()}")


def test_the_old_engine_answers_while_the_new_one_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "body OLD_RULE /cheap/\nscore OLD_RULE 1\n", 1)
    dirs = (str(tmp_path),)
    first = engine_for(dirs, include_default=False)
    assert "OLD_RULE" in first.rules
    # the rebuild is held until the test lets it go: a message meanwhile gets the old engine
    go, started = threading.Event(), threading.Event()
    real = engine_module.load_rules

    def slow_load(*a, **kw):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "rules-rebuild":
            started.set()
            go.wait(10)
        return real(*a, **kw)

    monkeypatch.setattr(engine_module, "load_rules", slow_load)
    write(tmp_path, "body NEW_RULE /pills/\nscore NEW_RULE 1\n", 2)
    t0 = time.monotonic()
    during = engine_for(dirs, include_default=False)
    assert during is first and time.monotonic() - t0 < 1.0
    assert started.wait(5)
    assert engine_for(dirs, include_default=False) is first  # still building: still the old one
    assert status(tmp_path) == ["building"]
    go.set()
    new = wait_for_other(dirs, first)
    assert "NEW_RULE" in new.rules and "OLD_RULE" not in new.rules
    assert status(tmp_path) == []


def test_a_rebuild_that_fails_leaves_the_old_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "body OLD_RULE /cheap/\nscore OLD_RULE 1\n", 1)
    dirs = (str(tmp_path),)
    first = engine_for(dirs, include_default=False)
    real = engine_module.load_rules

    def unreadable(*a, **kw):  # type: ignore[no-untyped-def]
        raise OSError("local.cf: permission denied")

    monkeypatch.setattr(engine_module, "load_rules", unreadable)
    write(tmp_path, "body NEW_RULE /pills/\nscore NEW_RULE 1\n", 2)
    assert engine_for(dirs, include_default=False) is first
    end = time.monotonic() + 10
    while time.monotonic() < end and "building" in status(tmp_path):
        time.sleep(0.02)
    assert status(tmp_path) == ["OSError: local.cf: permission denied"]
    for _ in range(3):  # not tried again for the same files: the old rules keep filtering
        assert engine_for(dirs, include_default=False) is first
    assert status(tmp_path) == ["OSError: local.cf: permission denied"]
    # the files change again (fixed): the next look builds them
    monkeypatch.setattr(engine_module, "load_rules", real)
    write(tmp_path, "body FIXED_RULE /fixed/\nscore FIXED_RULE 1\n", 3)
    fixed = wait_for_other(dirs, first)
    assert "FIXED_RULE" in fixed.rules


def test_an_older_build_that_finishes_last_does_not_replace_a_newer_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "body FIRST_RULE /one/\nscore FIRST_RULE 1\n", 1)
    dirs = (str(tmp_path),)
    first = engine_for(dirs, include_default=False)
    real = engine_module.load_rules
    hold, held = threading.Event(), threading.Event()

    def load(*a, **kw):  # type: ignore[no-untyped-def]
        if not held.is_set():  # the first rebuild (of the second files) waits until the next one is done
            held.set()
            hold.wait(10)
        return real(*a, **kw)

    monkeypatch.setattr(engine_module, "load_rules", load)
    write(tmp_path, "body SECOND_RULE /two/\nscore SECOND_RULE 1\n", 2)
    assert engine_for(dirs, include_default=False) is first
    assert held.wait(5)
    write(tmp_path, "body THIRD_RULE /three/\nscore THIRD_RULE 1\n", 3)
    third = wait_for_other(dirs, first)
    assert "THIRD_RULE" in third.rules
    hold.set()  # the older build finishes last: thrown away
    end = time.monotonic() + 10
    while time.monotonic() < end and "building" in status(tmp_path):
        time.sleep(0.02)
    for _ in range(3):
        assert engine_for(dirs, include_default=False) is third
