"""An administrator's own rules that Python reads otherwise than Perl are either read as
SpamAssassin 4 (Perl 5.36) reads them or listed by ``rules check`` with their file and line,
never dropped or misread without a word:

- a pattern Python refuses in an unexpected way (``(?u)``, a hex escape without digits) raised
  ValueError, which stopped the whole rule set from building (every message deferred);
- a rule inside ``ifplugin`` of a plugin the gateway does not load (a Razor2 block in local.cf);
- a chained comparison (``0 < A + B < 2``, always true read left to right) is refused, and
  ``== !=`` bind looser than ``< >`` as in Perl;
- ``\\g1``/``\\g{1}`` are backreferences, ``{ 2 }`` a quantifier, ``\\h`` has the no-break space,
  ``/xx`` is refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.antispam.engine import engine_for
from gateway_milter.antispam.sarules import load_rules
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg, write_rules


def _hits(d: Path, raw: bytes) -> set[str]:
    eng = engine_for((str(d),), 2, include_default=False)
    return {h.name for h in eng.run(message_view(make_ctx(raw))).hits}


def test_a_pattern_python_refuses_is_listed_and_the_rest_runs(tmp_path: Path, db: object) -> None:
    d = write_rules(tmp_path, "body LOCAL_GOOD /FREE money/\nbody LOCAL_U /(?u)caf\\w/\nbody LOCAL_X /\\x{zz}abc/\n")
    rs = load_rules([d], 2)
    assert "LOCAL_GOOD" in rs.rules and {"LOCAL_U", "LOCAL_X"} <= set(rs.unsupported)
    assert _hits(d, msg("hello", "get FREE money today")) == {"LOCAL_GOOD"}
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), stdout=out)
    assert "LOCAL_U (local.cf:2): does not compile" in out.getvalue()
    assert "LOCAL_X (local.cf:3): does not compile" in out.getvalue()


def test_a_rule_in_a_block_of_a_plugin_not_loaded_is_listed(tmp_path: Path) -> None:
    d = write_rules(tmp_path, "ifplugin Mail::SpamAssassin::Plugin::Razor2\nheader LOCAL_SHOP From =~ /shop/\n"
                              "score LOCAL_SHOP 2\nendif\nbody LOCAL_RUN /texte/\n")
    rs = load_rules([d], 2)
    assert "LOCAL_RUN" in rs.rules and "LOCAL_SHOP" not in rs.rules
    [key] = [k for k in rs.line_errors if "LOCAL_SHOP" in k]
    assert rs.line_errors[key] == "local.cf:2" and "Plugin::Razor2" in rs.unsupported[key]


def test_metas_compare_as_perl_does(tmp_path: Path) -> None:
    d = write_rules(tmp_path, "body __LOCAL_A /texte/\ntflags __LOCAL_A multiple\n"
                              "meta LOCAL_BETWEEN 0 < __LOCAL_A + 1 < 2\n"
                              "meta LOCAL_EQ 1 == __LOCAL_A > 0\n")
    rs = load_rules([d], 2)
    assert "chained comparison" in rs.unsupported["LOCAL_BETWEEN"]
    # Perl: 1 == (__LOCAL_A > 0); read left to right, (1 == 2) > 0 was false
    assert "LOCAL_EQ" in _hits(d, msg("hello", "texte texte"))


@pytest.mark.parametrize("rule, body, hit", [
    (r"/ab{ 2 }c/", "xabbcx", True), (r"/ab{1, 2}c/", "abbc", True), (r"/ab{ 2 }c/", "ab{ 2 }c", False),
    (r"/(wo)rd\g1/", "wordwo", True), (r"/(wo)rd\g{1}/", "wordwo", True), (r"/(wo)rd\g1/", "word", False),
    (r"/a\hb/", "a\u00a0b", True), (r"/a\Hb/", "a\u00a0b", False)])
def test_perl_syntax_python_reads_otherwise(tmp_path: Path, rule: str, body: str, hit: bool) -> None:
    d = write_rules(tmp_path, f"body LOCAL_R {rule}\n")
    assert ("LOCAL_R" in _hits(d, msg("hello", body, ctype="text/plain; charset=utf-8"))) is hit


@pytest.mark.parametrize("rule", [r"/(wo)rd\g{-1}/", r"/[ x]/xx"])
def test_perl_syntax_not_read_is_listed(tmp_path: Path, rule: str) -> None:
    rs = load_rules([write_rules(tmp_path, f"body LOCAL_R {rule}\n")], 2)
    assert "LOCAL_R" in rs.unsupported


def test_the_editor_warns_of_a_rule_in_a_plugins_block_and_saves_it() -> None:
    from gateway_milter.layers.rules import check_local_rules, local_rules_problems

    text = "ifplugin Mail::SpamAssassin::Plugin::Razor2\nheader LOCAL_SHOP From =~ /shop/\nendif\nbody LOCAL_RUN /texte/\n"
    _names, problems = local_rules_problems(text, known=set())
    assert [(p.line, p.severity) for p in problems] == [(2, "warning")]
    names, warnings = check_local_rules(text, known=set())
    assert "LOCAL_RUN" in names and warnings
