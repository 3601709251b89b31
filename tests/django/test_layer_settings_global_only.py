"""Settings that reach the server's files or state every domain shares are global-only: a
domain administrator cannot set them for their domain (API: 403 naming the field; pages: a
field error), a global administrator can, globally and per domain. Files named by the
settings (rule directories, score files) are checked when saved: a path the milter cannot
read would defer every message of the scope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.django.conftest import World

pytestmark = pytest.mark.django_db

RULE_FILE = """# local rules
header LOCAL_TEST_SUBJECT Subject =~ /\\bbuy now\\b/i
describe LOCAL_TEST_SUBJECT Subject says buy now
score LOCAL_TEST_SUBJECT 2.5
"""


@pytest.fixture
def rule_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules.d"
    d.mkdir()
    (d / "50_local.cf").write_text(RULE_FILE)
    return d


def _put(c: Any, layer: str, values: dict[str, Any], domain: str | None = "a.example") -> Any:
    q = f"?domain={domain}" if domain else ""
    return c.put(f"/api/layers/{layer}/{q}", {"settings": values}, content_type="application/json")


def _stored(layer: str, domain: Any = None) -> dict[str, Any] | None:
    from webadmin.models import LayerSetting

    row = LayerSetting.objects.filter(layer=layer, domain=domain).first()
    return row.values if row else None


@pytest.mark.parametrize(("layer", "values", "field"), [
    ("rules", {"rule_dirs": ["/etc/passwd", "/nonexistent/dir"]}, "rule_dirs"),
    ("rules", {"include_default": False}, "include_default"),
    ("rules", {"max_size": 5_000_000}, "max_size"),
    ("rules", {"skip_rules": ["FREEMAIL_FROM"]}, "skip_rules"),
    ("scoring", {"score_file": "/etc/shadow"}, "score_file"),
    ("bayes", {"autolearn_spam": -100, "autolearn_ham": -200}, "autolearn_ham"),
    ("bayes", {"autolearn": False}, "autolearn"),
    ("spamtrap", {"train_bayes": False}, "train_bayes"),
    ("spamtrap", {"mark_ip": False}, "mark_ip"),
    ("spamtrap", {"addresses": ["info@a.example"]}, "addresses"),
    ("spamtrap", {"ip_ttl": 3600}, "ip_ttl"),
    ("greylist", {"expiry": 300 * 86400}, "expiry"),
    ("uribl", {"max_lookups": 200}, "max_lookups"),
    ("antivirus", {"servers": ["tcp:10.0.0.5:3310"]}, "servers"),
    ("callback", {"allow_private_targets": True}, "allow_private_targets"),
    ("arc", {"seal": True, "seal_domain": "b.example", "seal_selector": "s1"}, "seal_domain"),
])
def test_it_refuses_a_global_only_field_from_a_domain_admin(world: World, layer: str, values: dict[str, Any],
                                                            field: str) -> None:
    from gateway_milter import layers

    if layer not in layers.available():
        pytest.skip(f"layer {layer} not in this build")
    r = _put(world.client("domain_admin"), layer, values)
    assert r.status_code == 403, r.content
    body = r.json()
    msgs = [m for k, v in body.items() for m in v if k.endswith(f".{layer}.{field}") or k.endswith(f".{layer}.")]
    assert any(f"only a global administrator may set {layer}." in m for m in msgs), body
    assert _stored(layer, world.a.domain) is None


def test_it_names_the_field_in_the_403(world: World) -> None:
    r = _put(world.client("domain_admin"), "rules", {"rule_dirs": ["/etc/passwd"]})
    assert r.status_code == 403
    assert r.json() == {"settings.rules.rule_dirs": ["only a global administrator may set rules.rule_dirs"]}


def test_it_refuses_the_global_scope_to_a_domain_admin_in_the_service(world: World) -> None:
    from webadmin.services import SettingsPermissionError, do_set_layer_settings

    with pytest.raises(SettingsPermissionError):
        do_set_layer_settings("greylist", {"delay": 60}, None, by=world.a.accounts["domain_admin"].user)
    assert _stored("greylist") is None


def test_it_lets_a_domain_admin_change_ordinary_fields(world: World) -> None:
    c = world.client("domain_admin")
    r = _put(c, "scoring", {"quarantine_score": 6.5, "reject_score": 15})
    assert r.status_code == 200, r.content
    r = _put(c, "greylist", {"mode": "on", "delay": 120})
    assert r.status_code == 200, r.content
    assert _stored("scoring", world.a.domain) == {"quarantine_score": 6.5, "reject_score": 15}
    assert _stored("greylist", world.a.domain) == {"mode": "on", "delay": 120}
    assert r.json()["warnings"] == []
    assert "expiry" in r.json()["global_only"]


def test_it_accepts_a_global_only_value_equal_to_the_one_in_force(world: World, rule_dir: Path) -> None:
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("rules", {"rule_dirs": [str(rule_dir)]})
    r = _put(world.client("domain_admin"), "rules", {"rule_dirs": [str(rule_dir)], "use_bayes": False})
    assert r.status_code == 200, r.content
    assert _stored("rules", world.a.domain) == {"use_bayes": False}  # not pinned for the domain


def test_it_keeps_what_a_global_admin_set_for_the_domain(world: World, rule_dir: Path) -> None:
    """A domain administrator's save (the API replaces the domain's row) keeps the global-only
    values a global administrator stored for the domain."""
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("rules", {"rule_dirs": [str(rule_dir)], "max_size": 2_000_000}, world.a.domain)
    c = world.client("domain_admin")
    r = _put(c, "rules", {"use_bayes": False})
    assert r.status_code == 200, r.content
    assert _stored("rules", world.a.domain) == {"use_bayes": False, "rule_dirs": [str(rule_dir)],
                                                "max_size": 2_000_000}
    r = _put(c, "rules", {"max_size": 3_000_000})
    assert r.status_code == 403


def test_a_global_admin_sets_rule_dirs_globally_and_per_domain(world: World, rule_dir: Path) -> None:
    c = world.client("global_admin")
    r = _put(c, "rules", {"rule_dirs": [str(rule_dir)]}, domain=None)
    assert r.status_code == 200, r.content
    assert _stored("rules") == {"rule_dirs": [str(rule_dir)]}
    r = _put(c, "rules", {"rule_dirs": [str(rule_dir / "50_local.cf")], "skip_rules": ["LOCAL_TEST_SUBJECT"]})
    assert r.status_code == 200, r.content
    assert _stored("rules", world.a.domain)["rule_dirs"] == [str(rule_dir / "50_local.cf")]
    r = _put(c, "scoring", {"score_file": str(_score_file(rule_dir))})
    assert r.status_code == 200, r.content


def _score_file(d: Path) -> Path:
    f = d / "scores.txt"
    f.write_text("# fitted\nbayes_logodds 0.09 80\nscore LOCAL_TEST_SUBJECT 1.5 1.5 1.0 1.0\n")
    return f


@pytest.mark.parametrize(("layer", "values", "field", "says"), [
    ("rules", {"rule_dirs": ["/nonexistent/dir"]}, "rule_dirs[0]", "no such file or directory"),
    ("rules", {"rule_dirs": ["/etc/passwd"]}, "rule_dirs[0]", "is not a SpamAssassin directive"),
    ("rules", {"rule_dirs": ["relative/dir"]}, "rule_dirs[0]", "is not an absolute path"),
    ("rules", {"rule_dirs": ["/dev/null"]}, "rule_dirs[0]", "neither a directory nor a regular file"),
    ("scoring", {"score_file": "/etc/passwd"}, "score_file", "is not a score line"),
    ("scoring", {"score_file": "/nonexistent.cf"}, "score_file", "no such file"),
])
def test_it_refuses_bad_paths_from_a_global_admin(world: World, layer: str, values: dict[str, Any], field: str,
                                                  says: str) -> None:
    c = world.client("global_admin")
    for domain in (None, "a.example"):
        r = _put(c, layer, values, domain)
        assert r.status_code == 400, r.content
        body = r.json()
        assert list(body) == [f"settings.{layer}.{field}"], body
        assert says in body[f"settings.{layer}.{field}"][0]
        assert "root:" not in json.dumps(body)  # never quotes the file
    assert _stored(layer) is None and _stored(layer, world.a.domain) is None


def test_it_refuses_an_unreadable_rule_file(world: World, rule_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("50_local.cf") else real(p, mode))
    r = _put(world.client("global_admin"), "rules", {"rule_dirs": [str(rule_dir)]}, domain=None)
    assert r.status_code == 400
    assert "cannot be read by the gateway" in r.json()["settings.rules.rule_dirs[0]"][0]


def test_it_warns_of_unknown_skip_rules_and_keeps_them(world: World, rule_dir: Path) -> None:
    r = _put(world.client("global_admin"), "rules", {"rule_dirs": [str(rule_dir)], "include_default": False,
                                                      "skip_rules": ["LOCAL_TEST_SUBJECT", "NO_SUCH_RULE"]}, None)
    assert r.status_code == 200, r.content
    assert any("NO_SUCH_RULE" in w and "LOCAL_TEST_SUBJECT" not in w for w in r.json()["warnings"])
    assert _stored("rules")["skip_rules"] == ["LOCAL_TEST_SUBJECT", "NO_SUCH_RULE"]


def test_the_layer_page_locks_global_only_fields_for_a_domain_admin(world: World) -> None:
    """The pages show a domain administrator the global-only fields as they are, disabled and
    marked, and ignore what a crafted post sends for them: the value in force stays."""
    c = world.client("domain_admin")
    url = f"/security/layers/spamtrap/?domain={world.a.domain.pk}"
    page = c.get(url)
    form = page.context["form"]
    assert form.fields["mark_ip"].disabled and form.fields["train_bayes"].disabled
    assert not form.fields["mode"].disabled
    html = page.content.decode()
    assert 'name="mark_ip"' in html and "set by a global administrator" in html
    data = {k: ("on" if v is True else v) for k, v in form.initial.items() if v is not None and v is not False}
    data.pop("mark_ip", None)  # a browser that ignores "disabled": mark_ip unchecked, False
    data["ip_ttl"] = 60  # global-only too
    r = c.post(url, data)
    assert r.status_code == 302, r.context["form"].errors if r.context else r
    stored = _stored("spamtrap", world.a.domain) or {}
    assert "mark_ip" not in stored and "ip_ttl" not in stored, stored


def test_the_layer_page_leaves_global_only_fields_open_to_a_global_admin(world: World) -> None:
    c = world.client("global_admin")
    for q in ("", f"?domain={world.a.domain.pk}"):
        form = c.get(f"/security/layers/spamtrap/{q}").context["form"]
        assert not form.fields["mark_ip"].disabled


def test_an_unknown_actor_name_is_not_the_system(world: World) -> None:
    """The service takes a caller with neither user nor name as the system (manage.py); a name
    that matches no account may not set global-only fields."""
    from webadmin.services import SettingsPermissionError, do_set_layer_settings

    with pytest.raises(SettingsPermissionError):
        do_set_layer_settings("greylist", {"delay": 60}, None, actor="no-such-account")
    with pytest.raises(SettingsPermissionError):
        do_set_layer_settings("greylist", {"expiry": 9 * 86400}, world.a.domain, actor="no-such-account")
    assert _stored("greylist") is None and _stored("greylist", world.a.domain) is None


def test_the_layer_page_saves_a_domain_admins_ordinary_change(world: World) -> None:
    c = world.client("domain_admin")
    url = f"/security/layers/greylist/?domain={world.a.domain.pk}"
    form = c.get(url).context["form"]
    data = {k: ("on" if v is True else v) for k, v in form.initial.items() if v is not None and v is not False}
    data["delay"] = 90
    r = c.post(url, data)
    assert r.status_code == 302, r.context["form"].errors if r.context else r
    assert _stored("greylist", world.a.domain) == {"delay": 90}


def test_policy_import_checks_the_files(world: World) -> None:
    from gateway_milter.layers.base import SettingsError
    from webadmin.models import Domain
    from webadmin.services import do_import_policy

    with pytest.raises(SettingsError) as e:
        do_import_policy({"domains": [{"name": "c.example", "settings": {"rules": {"rule_dirs": ["/etc/passwd"]}}}]})
    assert e.value.path == "domains[0].settings.rules.rule_dirs[0]"
    assert Domain.objects.filter(name="a.example").exists()
