"""Rules written in the web admin (rules setting ``local_rules``): checked when saved (every line
a directive, every rule runnable, the line or rule named), written to the file the engine
reads, and a change of text is a changed file: the rule set is built again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway_milter.layers import rules as rules_layer
from gateway_milter.layers.base import SettingsError
from gateway_milter.layers.rules import RulesSettings, check_local_rules, engine_from_settings, local_rules_file
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy

PIZZA = "body LOCAL_PIZZA /pizza/i\nscore LOCAL_PIZZA 3.5\ndescribe LOCAL_PIZZA Talks about pizza\n"


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(rules_layer, "_local_file", {})
    monkeypatch.setattr(rules_layer, "_local_failed", [-1e9])
    return tmp_path


def test_good_rules_pass_and_name_what_they_define() -> None:
    assert check_local_rules(PIZZA + "# a comment\n\nmeta LOCAL_BOTH LOCAL_PIZZA && __X\nbody __X /x/\n") == ({
        "LOCAL_PIZZA", "LOCAL_BOTH", "__X"}, [])


def test_directives_the_layer_does_not_read_are_a_warning() -> None:
    names, warnings = check_local_rules(PIZZA + "required_score 4\nthis is not a rule\n")
    assert names == {"LOCAL_PIZZA"}
    assert warnings == ["local_rules: not read by the rules layer, ignored: line 4 (required_score), line 5 (this)"]
    assert RulesSettings(local_rules=PIZZA + "required_score 4\n").check_at_save() == [
        "local_rules: not read by the rules layer, ignored: line 4 (required_score)"]


@pytest.mark.parametrize(("text", "says"), [
    ("body LOCAL_A /a/\n/etc/passwd: x\n", "line 2: not a SpamAssassin directive: '/etc/passwd: x'"),
    ("body LOCAL_A /a(/\n", "LOCAL_A would not run"),
    ("header LOCAL_B eval:no_such_function()\n", "LOCAL_B would not run"),
    ("meta LOCAL_M (LOCAL_A && \nbody LOCAL_A /a/\n", "LOCAL_M would not run"),
])
def test_bad_rules_are_refused_with_the_line_or_rule(text: str, says: str) -> None:
    with pytest.raises(SettingsError) as e:
        check_local_rules(text)
    assert e.value.path == "local_rules" and says in str(e.value), str(e.value)
    with pytest.raises(SettingsError):
        RulesSettings(local_rules=text).check_at_save()


def test_the_text_is_bounded() -> None:
    with pytest.raises(SettingsError) as e:
        RulesSettings(local_rules="# " + "x" * 200_001)
    assert e.value.path == "local_rules"


def test_the_file_is_written_once_per_text(_data_dir: Path) -> None:
    p = local_rules_file(PIZZA)
    assert p == _data_dir / "rules-local" / "local.cf" and p.read_text() == PIZZA
    stamp = p.stat().st_mtime_ns
    rules_layer._local_file.clear()  # (another process: same text, the file is left alone)
    assert local_rules_file(PIZZA) == p and p.stat().st_mtime_ns == stamp
    local_rules_file("body LOCAL_X /x/\n")
    assert p.read_text() == "body LOCAL_X /x/\n"


def test_the_rules_score_and_a_new_text_is_built_again(store: MemoryStore) -> None:
    doc = {"rules": {"include_default": False, "local_rules": PIZZA}, "scoring": {"layers": ["rules"]}}
    res = make_ctx(msg("menu", "Pizza tonight?"), policy(doc)).layer("rules")
    assert res.fact("hits") == ["LOCAL_PIZZA"] and res.symbols[0].detail == "Talks about pizza"
    # a new text: the same file changes, the old rule set answers until the new one is built
    doc["rules"]["local_rules"] = PIZZA.replace("3.5", "4.5")
    s = RulesSettings(include_default=False, local_rules=doc["rules"]["local_rules"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        eng = engine_from_settings(s)
        if eng.rules["LOCAL_PIZZA"].score == 4.5:
            break
        time.sleep(0.2)
    assert engine_from_settings(s).rules["LOCAL_PIZZA"].score == 4.5


def test_every_problem_is_listed_with_its_line() -> None:
    from gateway_milter.layers.rules import local_rules_problems

    text = ("body LOCAL_A /a(/\nrequired_score 5\n/etc/x y\nscore LOCAL_A 2\n"
            "meta LOCAL_M (LOCAL_A &&\nheader LOCAL_B eval:no_such_function()\nbody LOCAL_OK /ok/\n")
    names, problems = local_rules_problems(text)
    assert names == {"LOCAL_A", "LOCAL_M", "LOCAL_B", "LOCAL_OK"}
    got = [(p.line, p.severity, p.message.split(":")[0]) for p in problems]
    assert got == [(1, "error", "LOCAL_A would not run"), (2, "warning", "required_score"),
                   (3, "error", "not a SpamAssassin directive"), (5, "error", "LOCAL_M would not run"),
                   (6, "error", "LOCAL_B would not run")]
    assert "eval function no_such_function() is not implemented" in problems[-1].message
    # saving names the first error and counts the others
    with pytest.raises(SettingsError) as e:
        check_local_rules(text)
    assert str(e.value).startswith("local_rules: line 1: LOCAL_A would not run") and "(and 3 more)" in str(e.value)
    assert local_rules_problems(PIZZA) == ({"LOCAL_PIZZA"}, [])


def test_a_lone_surrogate_is_refused_as_a_setting_error() -> None:
    with pytest.raises(SettingsError) as e:
        RulesSettings(local_rules="body LOCAL_A /\ud800/\n")
    assert e.value.path == "local_rules" and "lone surrogate" in str(e.value)


@pytest.mark.parametrize("sep", ["\x0c", "\x85", "\u2028", "\x1e"])
def test_lines_end_at_lf_only_as_spamassassin_reads_them(sep: str) -> None:
    from gateway_milter.antispam.sarules import config_lines, load_rules

    text = f"body LOCAL_SEP /a{sep}b/\r\nscore LOCAL_SEP 2\n"
    assert config_lines(text) == [f"body LOCAL_SEP /a{sep}b/", "score LOCAL_SEP 2"]
    assert check_local_rules(text) == ({"LOCAL_SEP"}, [])  # (str.splitlines made two lines of the first)
    assert RulesSettings(local_rules=text).check_at_save() == []
    f = Path(__import__("tempfile").mkdtemp()) / "sep.cf"
    f.write_text(text, "utf-8")
    rs = load_rules([f])
    octets = f"xa{sep}by".encode().decode("latin-1")  # (rules read UTF-8 octets, as SpamAssassin does)
    assert rs.rules["LOCAL_SEP"].pattern.compiled.search(octets) and rs.rules["LOCAL_SEP"].score == 2


def test_a_local_rules_file_that_cannot_be_written_leaves_the_rules_as_they_were(
        _data_dir: Path, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # a full or read-only disk: the OSError failed the rules layer, which tempfailed every
    # message; the rule set now stays with the local rules written before
    doc = {"rules": {"include_default": False, "local_rules": PIZZA}, "scoring": {"layers": ["rules"]}}
    assert make_ctx(msg("menu", "Pizza tonight?"), policy(doc)).layer("rules").fact("hits") == ["LOCAL_PIZZA"]

    def full(self: Path, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    doc["rules"]["local_rules"] = PIZZA + "body LOCAL_PASTA /pasta/i\nscore LOCAL_PASTA 1\n"
    for _ in range(3):
        res = make_ctx(msg("menu", "Pizza tonight?"), policy(doc)).layer("rules")
        assert res.error is None, res.error
        assert res.fact("hits") == ["LOCAL_PIZZA"]
    assert (_data_dir / "rules-local" / "local.cf").read_text() == PIZZA
    assert not list((_data_dir / "rules-local").glob(".local.cf.*"))
    # with nothing written before, the set runs without local rules
    rules_layer._local_failed[0] = -1e9
    (_data_dir / "rules-local" / "local.cf").unlink()
    rules_layer._local_file.clear()
    assert local_rules_file("body LOCAL_Y /y/\n") is None
