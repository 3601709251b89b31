"""Rule file input the engine cannot apply as written is listed (``RuleSet.unsupported``, ``manage.py
rules check``) and reported by the web admin's check (``local_rules_problems``), never dropped
silently or half-applied, and never keeps the rest of the set from loading."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

from gateway_milter.antispam.engine import RuleEngine
from gateway_milter.antispam.sarules import load_rules
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.rules import RulesSettings, check_local_rules, local_rules_problems
from tests.unit.antispam.helpers import make_ctx, msg, write_rules


def _hits(tmp_path: Path, rules: str, raw: bytes) -> dict[str, int]:
    eng = RuleEngine(load_rules([write_rules(tmp_path, rules)]))
    return {h.name: h.count for h in eng.run(message_view(make_ctx(raw))).hits}


def _errors(text: str) -> list[str]:
    return [f"{p.line}: {p.message}" for p in local_rules_problems(text)[1] if p.severity == "error"]


def test_exists_in_a_mimeheader_rule_is_listed_and_the_set_still_builds(tmp_path: Path) -> None:
    # the engine tests a header's presence for header rules only
    text = "mimeheader LOCAL_M exists:Content-Type\nscore LOCAL_M 1\nbody LOCAL_OK /Hi/\nscore LOCAL_OK 1\n"
    rs = load_rules([write_rules(tmp_path, text)])
    assert "exists:" in rs.unsupported["LOCAL_M"]
    assert "LOCAL_OK" in RuleEngine(rs).rules
    assert _errors(text) == [f"1: LOCAL_M would not run: {rs.unsupported['LOCAL_M']}"]
    assert "LOCAL_H" in load_rules([write_rules(tmp_path, "header LOCAL_H exists:Subject\n")]).rules


def test_maxhits_without_multiple_counts_one_hit(tmp_path: Path) -> None:
    # SpamAssassin reads maxhits only for a rule with tflags multiple
    rules = ("body __LOCAL_E /e/\ntflags __LOCAL_E maxhits=3\n"
             "body __LOCAL_F /e/\ntflags __LOCAL_F multiple maxhits=3\n"
             "meta LOCAL_MANY_E __LOCAL_E > 1\nscore LOCAL_MANY_E 1\n"
             "meta LOCAL_MANY_F __LOCAL_F > 2\nscore LOCAL_MANY_F 1\n")
    hits = _hits(tmp_path, rules, msg(body="eee eee"))
    assert "LOCAL_MANY_E" not in hits
    assert "LOCAL_MANY_F" in hits


def test_a_too_deep_meta_is_listed_and_the_rest_loads(tmp_path: Path) -> None:
    # the engine reads a meta's tree recursively: a deep one would stop the whole set loading
    deep = {"LOCAL_OR": " || ".join(["A"] * 1200), "LOCAL_NOT": "!" * 3000 + "A",
            "LOCAL_PAREN": "(" * 1500 + "A" + ")" * 1500}
    text = "body A /Hi/\nbody LOCAL_OK /Hi/\nscore LOCAL_OK 1\n" + "".join(f"meta {n} {e}\n" for n, e in deep.items())
    rs = load_rules([write_rules(tmp_path, text)])
    assert "LOCAL_OK" in rs.rules
    for name in deep:
        assert "too deeply nested" in rs.unsupported[name]
    assert len(_errors(text)) == 3


def test_the_deepest_metas_within_bounds_run(tmp_path: Path) -> None:
    # (Debian's deepest metas are sums of 120 rules)
    rules = ("body A /Hi/\nmeta LOCAL_SUM " + " + ".join(["A"] * 149) + " > 1\nscore LOCAL_SUM 1\n"
             "meta LOCAL_NEST " + "(" * 49 + "A" + ")" * 49 + " && LOCAL_SUM\nscore LOCAL_NEST 1\n")
    assert {"LOCAL_SUM", "LOCAL_NEST"} <= set(_hits(tmp_path, rules, msg()))


def test_an_unreadable_score_line_is_listed(tmp_path: Path) -> None:
    # SpamAssassin takes one score or four (the score sets); 2,5 is no number
    text = ("body LOCAL_S /Hi/\nscore LOCAL_S 2,5\nscore LOCAL_S 1 2\nscore LOCAL_S 1 2 3\nscore LOCAL_S\n"
            "body LOCAL_T /Hi/\nscore LOCAL_T 1 2 3 (4)\n")
    rs = load_rules([write_rules(tmp_path, text)], score_set=3)
    assert sorted(k for k in rs.unsupported if k.startswith("score LOCAL_S")) == [
        f"score LOCAL_S (local.cf:{n})" for n in (2, 3, 4, 5)]
    # one value in parentheses makes the line relative (SpamAssassin's Conf), and LOCAL_T has no
    # score before it to add to: the line is refused, the rule keeps its default
    assert rs.rules["LOCAL_T"].score == 1.0 and "score LOCAL_T (local.cf:7)" in rs.unsupported
    assert [e.split(":")[0] for e in _errors(text)] == ["2", "3", "4", "5", "7"]
    assert "cannot read the score line 'LOCAL_S 2,5'" in _errors(text)[0]


def test_a_rule_with_an_invalid_name_is_listed(tmp_path: Path) -> None:
    text = "body LOCAL_OK /Hi/\nbody LOCAL-DASH /Hi/\nscore LOCAL-DASH 3\n"
    rs = load_rules([write_rules(tmp_path, text)])
    assert "not a rule name" in rs.unsupported["body LOCAL-DASH (local.cf:2)"]
    assert _errors(text) == [f"2: {rs.unsupported['body LOCAL-DASH (local.cf:2)']}"]


def test_include_is_listed(tmp_path: Path) -> None:
    # the engine reads the files of the rule directories only, never a file an include names
    d = write_rules(tmp_path, "include more.rules\n")
    (d / "more.rules").write_text("body LOCAL_INC /Hi/\nscore LOCAL_INC 3\n")
    rs = load_rules([d])
    assert rs.unsupported["include more.rules (local.cf:1)"] == (
        "include is not supported; put the file in a rule directory")
    assert _errors("include more.rules\n") == ["1: include is not supported; put the file in a rule directory"]


def test_an_unreadable_if_condition_skips_its_block_and_is_listed(tmp_path: Path) -> None:
    text = "if perl_version >= 5.010\nbody LOCAL_U /Hi/\nscore LOCAL_U 3\nendif\n"
    rs = load_rules([write_rules(tmp_path, text)])
    assert "LOCAL_U" not in rs.rules
    assert "'perl_version >= 5.010'" in rs.unsupported["if perl_version >= 5.010 (local.cf:1)"]
    assert _errors(text) == [f"1: {rs.unsupported['if perl_version >= 5.010 (local.cf:1)']}"]


def test_the_conditions_of_debians_rule_files_are_read() -> None:
    # (each form of condition /usr/share/spamassassin uses)
    text = "".join(f"if {c}\nbody LOCAL_{i} /Hi/\nendif\n" for i, c in enumerate((
        "(version >= 3.004002)", "!((version >= 3.003000))", "(version < 4.000000)",
        "can(Mail::SpamAssassin::Conf::feature_bug6558_free)", "!can(Mail::SpamAssassin::Conf::feature_welcomelist_blocklist)",
        "!(can(Mail::SpamAssassin::Plugin::ASN::has_check_asn))", "!plugin(Mail::SpamAssassin::Plugin::DKIM)",
        "!(!plugin(Mail::SpamAssassin::Plugin::DKIM))")))
    assert local_rules_problems(text)[1] == []


def test_a_meta_on_a_rule_no_file_defines_runs_and_is_reported(tmp_path: Path) -> None:
    # it runs with the name read as 0, as in SpamAssassin (Debian's metas read rules of plugins
    # not loaded), so a typo makes LOCAL_A && !LOCAL_TYPO plain LOCAL_A: it is said
    text = "body LOCAL_A /Hi/\nmeta LOCAL_M LOCAL_A && !LOCAL_TYPO\nscore LOCAL_M 1\nmeta LOCAL_N LOCAL_A && BAYES_99\n"
    d = write_rules(tmp_path, text)
    rs = load_rules([d])
    assert rs.undefined_deps == {"LOCAL_M": ("LOCAL_TYPO",), "LOCAL_N": ("BAYES_99",)}
    assert "LOCAL_M" in _hits(tmp_path, text, msg())
    # a rule of the other files (here BAYES_99) is defined
    assert [(p.line, p.severity, p.message) for p in local_rules_problems(text, known={"BAYES_99"})[1]] == [
        (2, "warning", "LOCAL_M reads LOCAL_TYPO, which no rule defines (read as 0)")]
    assert check_local_rules(text, known={"BAYES_99"})[1] == [
        "local_rules: line 2: LOCAL_M reads LOCAL_TYPO, which no rule defines (read as 0)"]
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), stdout=out)
    assert "2 meta rule(s) read rules no file defines (read as 0):\n  LOCAL_M: LOCAL_TYPO\n  LOCAL_N: BAYES_99\n" in (
        out.getvalue())


def test_saving_rule_dirs_warns_of_lines_that_cannot_be_read(tmp_path: Path) -> None:
    d = write_rules(tmp_path, "body LOCAL_S /Hi/\nscore LOCAL_S 2,5\ninclude more.rules\n")
    assert RulesSettings(rule_dirs=(str(d),), include_default=False).check_at_save() == [
        "rule_dirs: 2 line(s) cannot be read (include more.rules (local.cf:3), "
        "score LOCAL_S (local.cf:2); see manage.py rules check)"]


def test_rules_check_names_the_layer_that_answers_a_plugin_rule(tmp_path: Path) -> None:
    d = write_rules(tmp_path, "meta LOCAL_P SPF_PASS || DKIM_VALID_AU || LOCAL_TYPO\nscore LOCAL_P 1\n")
    out = io.StringIO()
    call_command("rules", "check", "--no-default", "--dir", str(d), stdout=out)
    assert ("  LOCAL_P: SPF_PASS (answered by the spf layer), DKIM_VALID_AU (answered by the dkim layer), LOCAL_TYPO\n"
            in out.getvalue())
