"""Range and format checks of the layer settings: the policy loader and the pages and API all
build settings through settings_from_dict, so a value refused here is refused everywhere,
with the field's path. Plus the save-time checks of the files the settings name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway_milter import layers
from gateway_milter.layers.base import SettingsError, settings_from_dict
from gateway_milter.policy.snapshot import validate_document


@pytest.mark.parametrize(("layer", "values", "path", "says"), [
    ("spamtrap", {"ip_ttl": -1}, "ip_ttl", "must be 60.."),
    ("spamtrap", {"ip_ttl": 0}, "ip_ttl", "must be 60.."),
    ("spamtrap", {"addresses": ["@"]}, "addresses[0]", "is not an address"),
    ("spamtrap", {"addresses": ["trap@a.example", "a b@x.example"]}, "addresses[1]", "is not an address"),
    ("spamtrap", {"addresses": ["trap@bad..example"]}, "addresses[0]", "is not an address"),
    ("spamtrap", {"addresses": ["no-at-sign"]}, "addresses[0]", "is not an address"),
    ("rules", {"max_size": 10**12}, "max_size", "must be 10000..20000000"),
    ("rules", {"max_size": 100}, "max_size", "must be 10000.."),
    ("rules", {"skip_rules": ["bad name!"]}, "skip_rules[0]", "is not a rule name"),
    ("rules", {"rule_dirs": ["rules.d"]}, "rule_dirs[0]", "is not an absolute path"),
    ("scoring", {"score_file": "scores.cf"}, "score_file", "is not an absolute path"),
    ("uribl", {"zones": [{"zone": "multi.surbl.org", "mask": "0x100000000"}]}, "zones[0].mask", "0..0xffffffff"),
    ("uribl", {"zones": [{"zone": "multi.surbl.org", "mask": -1}]}, "zones[0].mask", "0..0xffffffff"),
    ("dnsbl", {"zones": [{"zone": "zen.spamhaus.org", "mask": 2**32}]}, "zones[0].mask", "0..0xffffffff"),
    ("dnsbl", {"zones": [{"zone": f"z{i}.example.org"} for i in range(31)]}, "zones", "at most 30 zones"),
    ("vbr", {"max_certifiers": -1}, "max_certifiers", "must be 1..20"),
    ("vbr", {"max_certifiers": 0}, "max_certifiers", "must be 1..20"),
    ("vbr", {"trusted_certifiers": ["not a domain!"]}, "trusted_certifiers[0]", "is not a domain name"),
    ("greylist", {"auto_pass_after": -1}, "auto_pass_after", "must be 0..1000"),
    ("greylist", {"expiry": 10 * 365 * 86400}, "expiry", "at most"),
])
def test_it_refuses_out_of_range_values(layer: str, values: dict[str, Any], path: str, says: str) -> None:
    with pytest.raises(SettingsError) as e:
        settings_from_dict(layers.get(layer).Settings, values, f"settings.{layer}.")
    assert e.value.path == f"settings.{layer}.{path}"
    assert says in e.value.message
    with pytest.raises(SettingsError) as e:  # the policy file loader says the same
        validate_document({"settings": {layer: values}})
    assert e.value.path == f"settings.{layer}.{path}"


@pytest.mark.parametrize(("layer", "values"), [
    ("spamtrap", {"addresses": ["trap@a.example", "spamtrap@", "Trap@Bücher.example."], "ip_ttl": 60}),
    ("rules", {"max_size": 20_000_000, "skip_rules": ["FREEMAIL_FROM", "__LOCAL_SUB"], "rule_dirs": ["/etc/x"]}),
    ("uribl", {"zones": [{"zone": "multi.surbl.org", "mask": "0xffffffff"}]}),
    ("vbr", {"trusted_certifiers": ["certifier.example", "Vouch.Example."], "max_certifiers": 20}),
    ("greylist", {"auto_pass_after": 0, "expiry": 365 * 86400}),
])
def test_it_accepts_values_in_range(layer: str, values: dict[str, Any]) -> None:
    settings_from_dict(layers.get(layer).Settings, values)


def test_every_global_only_field_is_a_field() -> None:
    import dataclasses

    for lid in layers.available():
        cls = layers.get(lid).Settings
        assert cls.global_only_fields <= {f.name for f in dataclasses.fields(cls)}, lid
    assert {"rule_dirs", "include_default", "max_size"} <= layers.get("rules").Settings.global_only_fields
    assert "score_file" in layers.get("scoring").Settings.global_only_fields
    assert {"train_bayes", "mark_ip"} <= layers.get("spamtrap").Settings.global_only_fields


# -- save-time checks of the files ---------------------------------------------------------------
def _rules(**kw: Any) -> Any:
    return layers.get("rules").Settings(**kw)


def test_it_checks_a_small_rule_directory_in_well_under_a_second(tmp_path: Path) -> None:
    import time

    d = tmp_path / "rules.d"
    d.mkdir()
    (d / "10_a.cf").write_text("\n".join(f"body LOCAL_R{i} /word{i}/\nscore LOCAL_R{i} 0.5" for i in range(200)))
    (d / "README").write_text("not read: only *.cf files of a directory are")
    t0 = time.monotonic()
    assert _rules(rule_dirs=(str(d),), include_default=False).check_at_save() == []
    assert time.monotonic() - t0 < 2.0


def test_it_warns_of_rules_that_will_not_run(tmp_path: Path) -> None:
    f = tmp_path / "local.cf"
    f.write_text("body LOCAL_OK /fine/\nbody LOCAL_BAD eval:no_such_eval_function()\n")
    warnings = _rules(rule_dirs=(str(f),), include_default=False).check_at_save()
    assert any("1 rule(s) will not run (LOCAL_BAD" in w for w in warnings), warnings


def test_a_large_rule_set_is_read_line_by_line_only(tmp_path: Path) -> None:
    f = tmp_path / "big.cf"
    f.write_text("\n".join(f"body LOCAL_R{i} /w{i}/" for i in range(1000)))
    warnings = _rules(rule_dirs=(str(f),), include_default=False).check_at_save()
    assert any("1000 rules read but not compiled at save" in w for w in warnings), warnings


def test_comments_only_and_conditionals_are_rule_files(tmp_path: Path) -> None:
    f = tmp_path / "local.cf"
    f.write_text("# nothing yet\n\nifplugin Mail::SpamAssassin::Plugin::Foo\nendif\nif (version >= 3.004)\n"
                 "required_score 5\nendif\n")
    assert _rules(rule_dirs=(str(f),), include_default=False).check_at_save() == []


@pytest.mark.parametrize("content", ["root:x:0:0:root:/root:/bin/bash\n", "\x7fELF\x02\x01\x01\x00\n",
                                     "body OK /x/\n<html>\n"])
def test_it_refuses_files_that_are_not_rule_files(tmp_path: Path, content: str) -> None:
    f = tmp_path / "x.cf"
    f.write_text(content)
    with pytest.raises(SettingsError) as e:
        _rules(rule_dirs=(str(f),)).check_at_save()
    assert e.value.path == "rule_dirs[0]"
    assert "is not a SpamAssassin directive" in e.value.message


def test_it_refuses_a_missing_path_among_good_ones(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as e:
        _rules(rule_dirs=(str(tmp_path), str(tmp_path / "gone"))).check_at_save()
    assert e.value.path == "rule_dirs[1]"


@pytest.mark.parametrize(("content", "says"), [
    ("score A 1.0\nscore B 1.2.3\n", "line 2 is not a score line"),
    ("# only a comment\n", "no score line"),
    ("bayes_logodds 0.1 80\n", "no score line"),
])
def test_it_refuses_a_bad_score_file(tmp_path: Path, content: str, says: str) -> None:
    f = tmp_path / "scores.cf"
    f.write_text(content)
    with pytest.raises(SettingsError) as e:
        layers.get("scoring").Settings(score_file=str(f)).check_at_save()
    assert e.value.path == "score_file"
    assert says in e.value.message


def test_the_shipped_score_files_pass() -> None:
    from gateway_milter.layers.scoring import COUNTS_ONLY_SCORE_FILE, FITTED_SCORE_FILE

    for f in (FITTED_SCORE_FILE, COUNTS_ONLY_SCORE_FILE):
        assert layers.get("scoring").Settings(score_file=str(f)).check_at_save() == []
