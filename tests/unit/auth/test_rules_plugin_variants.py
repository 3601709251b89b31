"""The rule files are read with SpamAssassin's DKIM and SPF plugins loaded
(tests/unit/antispam/test_plugin_conditionals.py), so their rules meet the dkim layer's answers:

- ``__DKIM_DEPENDABLE`` (the one DKIM plugin rule that is no network test) is 1 once the dkim
  layer has checked the message, 0 when it has not (as SpamAssassin without DNS reads it);
- ``DKIM_INVALID``, the plugin's meta ``DKIM_SIGNED && !DKIM_VALID``, is scored by the dkim
  layer, which names it itself: the rules layer, which now reads the meta too, does not name it
  a second time.

Real signatures against zone data, as tests/unit/auth/test_rules_auth_results.py."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.auth.keystore import KeyStore
from tests.unit.auth.auth_helpers import make_ctx, message
from tests.unit.auth.test_rules_auth_results import keys, signed, zone  # noqa: F401 (fixtures)

RULES = r"""
meta     LOCAL_DEPENDABLE  __DKIM_DEPENDABLE
score    LOCAL_DEPENDABLE  0.5
ifplugin Mail::SpamAssassin::Plugin::DKIM
full     __DKIM_DEPENDABLE  eval:check_dkim_dependable()
meta     DKIM_INVALID       DKIM_SIGNED && !DKIM_VALID
score    DKIM_INVALID       0.1
endif
"""


def doc(tmp_path: Path) -> dict[str, object]:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "local.cf").write_text(RULES)
    return {"domains": ["local.test"],
            "settings": {"rules": {"include_default": False, "rule_dirs": [str(d)], "use_bayes": False}}}


def test_dkim_dependable_once_the_dkim_layer_checked(tmp_path: Path, keys: KeyStore) -> None:  # noqa: F811
    raw = signed(keys, message())
    ctx = make_ctx(raw, ip="203.0.113.9", doc=doc(tmp_path))
    ctx.layer("dkim")
    assert "LOCAL_DEPENDABLE" in {s.name for s in ctx.layer("rules").symbols}
    ctx = make_ctx(raw, ip="203.0.113.9", doc=doc(tmp_path))  # the dkim layer has not run
    assert "LOCAL_DEPENDABLE" not in {s.name for s in ctx.layer("rules").symbols}


def test_dkim_invalid_is_named_once(tmp_path: Path, keys: KeyStore) -> None:  # noqa: F811
    broken = signed(keys, message()).replace(b"Hi Bob", b"Hi Rob")  # the body hash fails
    ctx = make_ctx(broken, ip="203.0.113.9", doc=doc(tmp_path))
    assert ctx.layer("dkim").has("DKIM_INVALID")
    rules = ctx.layer("rules")
    assert "DKIM_INVALID" not in {s.name for s in rules.symbols}
    assert "DKIM_INVALID" not in rules.fact("hits") and rules.fact("score") == 0.5
    ctx.layer("scoring")
    assert [s.name for s in ctx.symbols].count("DKIM_INVALID") == 1
