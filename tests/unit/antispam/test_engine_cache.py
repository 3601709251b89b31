"""The process's rule engines (engine_for): several rule sets kept, the stale version of one
dropped when its files change, the cheapest to build dropped past MAX_ENGINES."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_milter.antispam import engine as engine_module
from gateway_milter.antispam.engine import engine_for

RULES = "body LOCAL_{n} /word{n}/\nscore LOCAL_{n} 1\n"


def rule_dir(tmp_path: Path, n: int) -> str:
    d = tmp_path / f"set{n}"
    d.mkdir(exist_ok=True)
    (d / "local.cf").write_text(RULES.format(n=n))
    return str(d)


@pytest.fixture
def no_recheck_delay() -> Iterator[None]:
    """An empty cache (the suite's engines, the Debian set's among them, are put back after),
    and the files looked at on every call (the 1 s pause would hide a change made in a test)."""
    engines, cpu, checked = engine_module._engines, engine_module._build_cpu, engine_module._checked
    saved_engines, saved_cpu, saved_checked = dict(engines), dict(cpu), dict(checked)
    old = engine_module.RECHECK_S
    engine_module.RECHECK_S = 0.0
    engines.clear()
    cpu.clear()
    checked.clear()
    try:
        yield
    finally:
        engine_module.RECHECK_S = old
        engines.clear()
        engines.update(saved_engines)
        cpu.clear()
        cpu.update(saved_cpu)
        checked.clear()
        checked.update(saved_checked)


def key_of(d: str) -> tuple[object, ...]:
    return engine_module._checked[((d,), 2, False, (), False)][1]


def test_two_rule_sets_used_in_turn_are_each_built_once(tmp_path: Path, no_recheck_delay: None) -> None:
    a, b = rule_dir(tmp_path, 1), rule_dir(tmp_path, 2)
    ea = engine_for((a,), 2, include_default=False)
    eb = engine_for((b,), 2, include_default=False)
    assert ea is not eb and "LOCAL_1" in ea.rules and "LOCAL_2" in eb.rules
    # a message for one domain, then one for the other, ...: no rebuild
    for _ in range(3):
        assert engine_for((a,), 2, include_default=False) is ea
        assert engine_for((b,), 2, include_default=False) is eb
    # other skipped rules are another rule set, kept beside the first
    skipping = engine_for((a,), 2, include_default=False, skip=("LOCAL_1",))
    assert skipping is not ea and engine_for((a,), 2, include_default=False) is ea


def test_a_changed_file_replaces_its_engine_and_the_old_one_goes(tmp_path: Path, no_recheck_delay: None) -> None:
    a = rule_dir(tmp_path, 1)
    old = engine_for((a,), 2, include_default=False)
    old_key = key_of(a)
    f = Path(a) / "local.cf"
    f.write_text(RULES.format(n=1) + "body LOCAL_NEW /new/\nscore LOCAL_NEW 1\n")
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # (a coarse clock may not move)
    # the old engine answers while the new one builds in the background
    assert engine_for((a,), 2, include_default=False) is old
    end = time.monotonic() + 20
    while (new := engine_for((a,), 2, include_default=False)) is old and time.monotonic() < end:
        time.sleep(0.02)
    assert new is not old and "LOCAL_NEW" in new.rules
    assert old_key not in engine_module._engines and key_of(a) in engine_module._engines


def test_past_the_cap_the_cheapest_goes_and_the_costly_one_stays(tmp_path: Path, no_recheck_delay: None,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="bulwark.rules")
    costly_dir = rule_dir(tmp_path, 0)
    costly = engine_for((costly_dir,), 2, include_default=False)
    engine_module._build_cpu[key_of(costly_dir)] = 15.0  # as the Debian set costs
    dirs = [rule_dir(tmp_path, n) for n in range(1, engine_module.MAX_ENGINES + 3)]
    for d in dirs:
        engine_for((d,), 2, include_default=False)
        assert len(engine_module._engines) <= engine_module.MAX_ENGINES
        assert set(engine_module._build_cpu) == set(engine_module._engines)
    # the costly set was never dropped for the small ones; the newest is there too
    assert engine_for((costly_dir,), 2, include_default=False) is costly
    assert key_of(dirs[-1]) in engine_module._engines
    # each build is logged; each drop past the cap is a warning (rule sets built again and again)
    builds = [r for r in caplog.records if "rule set built" in r.getMessage()]
    drops = [r for r in caplog.records if r.levelname == "WARNING" and "dropped" in r.getMessage()]
    assert len(builds) == len(dirs) + 1 and len(drops) == len(dirs) + 1 - engine_module.MAX_ENGINES
    # arguments whose engine went are forgotten with it (the look-up table stays bounded)
    assert all(k in engine_module._engines for _t, k in engine_module._checked.values())


SHARED_RULES = r"""
body  LOCAL_LOOKALIKE  /(?!unsubscribe)(?:U|\xc3\x9c|\|_\|)(?:N|\|\\\|)(?:S|\$|5)(?:U|\|_\|)(?:B|8)/i
score LOCAL_LOOKALIKE  1
body  LOCAL_WORDS      /\b(?:cheap|low[ -]cost) (?:pills|meds)\b/i
score LOCAL_WORDS      1
body  LOCAL_SPACED     /v[\s.]*i[\s.]*a[\s.]*g[\s.]*r[\s.]*a/i
score LOCAL_SPACED     1
body  LOCAL_CLASSES    /[a-z0-9]{3,}@[a-z0-9-]+\.(?:biz|info)\b/
score LOCAL_CLASSES    1
uri   LOCAL_URI        /^https?:\/\/\d+\.\d+\.\d+\.\d+\//
score LOCAL_URI        1
rawbody LOCAL_RAW      /<font\s+size=["']?\+?[4-7]/i
score LOCAL_RAW        1
"""


def test_each_pattern_is_parsed_once_per_build_with_the_same_prefilters(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.antispam import matcher
    from gateway_milter.antispam.engine import RuleEngine
    from gateway_milter.antispam.sarules import load_rules

    d = tmp_path / "rules"
    d.mkdir()
    (d / "local.cf").write_text(SHARED_RULES)
    rs = load_rules([d], 2)
    parsed: list[str] = []
    real = matcher.P

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def parse(self, source: str, flags: int = 0) -> object:
            parsed.append(source)
            return real.parse(source, flags)

    monkeypatch.setattr(matcher, "P", Counting())
    eng = RuleEngine(rs)
    assert parsed and len(parsed) == len(set(parsed))  # every tree asked for again came from the memo
    assert not matcher._trees  # dropped when the build ended
    # outside a build each call parses: the prefilters are those computed one by one
    for r in eng.pattern_rules:
        assert r.pattern is not None
        f = matcher.required_factors(r.pattern)
        sq = matcher.required_squeezed_factors(r.pattern)
        if sq is not None and (f is None or min(map(len, sq)) > min(map(len, f))):
            f = sq
        assert eng.factors.get(r.name) == f, r.name
        pos = matcher.position_pattern(r.pattern, engine_module.POSITIONS)
        assert (eng.position[r.name].pattern if r.name in eng.position else None) == (pos.pattern if pos else None)
        rel = matcher.relaxed_pattern(r.pattern) if f is None else None
        assert (eng.relaxed[r.name].pattern if r.name in eng.relaxed else None) == (rel.pattern if rel else None)
    assert len(parsed) > len(set(parsed))  # (and those did parse again)


def test_the_rules_layer_serves_domains_with_other_rules_settings_without_rebuilding(
        tmp_path: Path, no_recheck_delay: None, caplog: pytest.LogCaptureFixture) -> None:
    from gateway_milter.policy.snapshot import PolicySnapshot
    from tests.unit.antispam.helpers import make_ctx, msg

    caplog.set_level("INFO", logger="bulwark.rules")
    d = rule_dir(tmp_path, 1)
    pol = PolicySnapshot.from_document({
        "settings": {"rules": {"include_default": False, "rule_dirs": [d], "use_bayes": False}},
        "domains": ["example.com", {"name": "other.example", "settings": {"rules": {"skip_rules": ["LOCAL_1"]}}}]})
    for _ in range(3):  # messages for one domain, then the other, in turn
        a = make_ctx(msg("x", "word1"), pol, rcpts=("bob@example.com",)).layer("rules")
        b = make_ctx(msg("x", "word1"), pol, rcpts=("eve@other.example",)).layer("rules")
        assert a.has("LOCAL_1") and not b.has("LOCAL_1")  # each domain's own settings
    assert len([r for r in caplog.records if "rule set built" in r.getMessage()]) == 2


def test_a_missing_directory_is_not_read_as_an_empty_one(tmp_path: Path, no_recheck_delay: None) -> None:
    """A rule set naming a directory that does not exist used to be named by its files alone
    (none), so once a set without any file had been built, the missing directory was answered
    with that set instead of its error (``rules check --dir /nonexistent`` passed or failed by
    what the process had built before)."""
    from gateway_milter.antispam.sarules import RuleFileError

    empty = engine_for((), 2, include_default=False)
    assert empty.rules == {}
    with pytest.raises(RuleFileError, match="No such file or directory"):
        engine_for((str(tmp_path / "missing"),), 2, include_default=False)
