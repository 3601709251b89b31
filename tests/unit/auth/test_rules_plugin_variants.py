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
from gateway_milter.context import MessageContext
from tests.unit.auth.auth_helpers import make_ctx, message, rules_doc
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
    return rules_doc(tmp_path, RULES)


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


WELCOME = r"""
ifplugin Mail::SpamAssassin::Plugin::DKIM
header   USER_IN_DEF_DKIM_WL       eval:check_for_def_dkim_welcomelist_from()
tflags   USER_IN_DEF_DKIM_WL       nice noautolearn net
score    USER_IN_DEF_DKIM_WL       -7.5
header   USER_IN_DKIM_WELCOMELIST  eval:check_for_dkim_whitelist_from()
tflags   USER_IN_DKIM_WELCOMELIST  nice noautolearn net
score    USER_IN_DKIM_WELCOMELIST  -100
def_welcomelist_from_dkim  *@example.test
welcomelist_from_dkim      *@news.example.test   *.example.test
welcomelist_from_dkim      *@shop.example.test   example.test
endif
ifplugin Mail::SpamAssassin::Plugin::SPF
header   USER_IN_DEF_SPF_WL        eval:check_for_def_spf_welcomelist_from()
tflags   USER_IN_DEF_SPF_WL        nice noautolearn net
score    USER_IN_DEF_SPF_WL        -7.5
endif
def_welcomelist_auth       *@example.test
"""
LISTED = {"USER_IN_DEF_DKIM_WL", "USER_IN_DKIM_WELCOMELIST", "USER_IN_DEF_SPF_WL"}


def welcome_doc(tmp_path: Path) -> dict[str, object]:
    return rules_doc(tmp_path, WELCOME, "welcome")


def listed(ctx: MessageContext) -> set[str]:
    ctx.layer("spf")
    ctx.layer("dkim")
    return {s.name for s in ctx.layer("rules").symbols} & LISTED


def test_the_dkim_and_spf_welcome_lists(tmp_path: Path, keys: KeyStore) -> None:  # noqa: F811
    """DKIM.pm's and SPF.pm's welcome-lists: an author signature of a listed author's own domain
    (``def_welcomelist_from_dkim`` without a domain, ``def_welcomelist_auth``), a signature of
    the domain an entry names (``*.`` its subdomains only), an SPF pass of a listed sender."""
    doc = welcome_doc(tmp_path)
    # signed by example.test, sent from a host its SPF record names
    assert listed(make_ctx(signed(keys, message()), ip="192.0.2.5", doc=doc)) == {"USER_IN_DEF_DKIM_WL", "USER_IN_DEF_SPF_WL"}
    # the same signature, from a host SPF refuses: the DKIM list alone
    assert listed(make_ctx(signed(keys, message()), ip="203.0.113.9", doc=doc)) == {"USER_IN_DEF_DKIM_WL"}
    # unsigned, or the signature broken: nothing vouches for the author
    assert listed(make_ctx(message(), ip="203.0.113.9", doc=doc)) == set()
    broken = signed(keys, message()).replace(b"Hi Bob", b"Hi Rob")
    assert listed(make_ctx(broken, ip="203.0.113.9", doc=doc)) == set()
    # shop.example.test's entry asks for example.test's signature: given; its author domain
    # is not the signer, so the default list (author signatures) says no
    shop = signed(keys, message(frm="Shop <orders@shop.example.test>"))
    assert listed(make_ctx(shop, ip="203.0.113.9", mail_from="<orders@shop.example.test>", doc=doc)) == {
        "USER_IN_DKIM_WELCOMELIST"}
    # news.example.test's entry asks for a subdomain of example.test: example.test itself is none
    news = signed(keys, message(frm="News <n@news.example.test>"))
    assert listed(make_ctx(news, ip="203.0.113.9", mail_from="<n@news.example.test>", doc=doc)) == set()


def test_the_welcome_lists_read_only_results_at_hand(tmp_path: Path, keys: KeyStore) -> None:  # noqa: F811
    """Where the dkim and spf layers have not run (off, exempt, or `manage.py scan`), the lists
    match nothing: SpamAssassin without DNS."""
    ctx = make_ctx(signed(keys, message()), ip="192.0.2.5", doc=welcome_doc(tmp_path))
    assert {s.name for s in ctx.layer("rules").symbols} & LISTED == set()


def test_the_plugin_rules_compare_the_signing_identitys_domain(tmp_path: Path) -> None:
    """DKIM_VALID_AU and DKIM_VALID_EF compare the SDID (the domain of ``i=``, else ``d=``) with
    the author's and the envelope sender's domains, as the plugin's _check_dkim_signed_by does:
    ``d=example.test; i=@mail.example.test`` is no author signature of example.test, and a
    signature without a selector is not read."""
    from gateway_milter.layers.rules import plugin_inputs
    from gateway_milter.pipeline.runner import LayerResult

    ctx = make_ctx(message(), ip="203.0.113.9", doc=doc(tmp_path))
    assert ctx.runner is not None
    ctx.runner._results["dkim"] = LayerResult("dkim", {"signatures": [
        {"d": "example.test", "s": "sel1", "i": "@mail.example.test", "result": "pass"},
        {"d": "other.test", "s": "", "i": "", "result": "pass"}]})
    known, extras = plugin_inputs(ctx)
    assert known == {"DKIM_SIGNED": 1, "DKIM_VALID": 1, "DKIM_VALID_AU": 0, "DKIM_VALID_EF": 0}
    assert extras == {"dkim_checked": True, "dkim_signatures": (("mail.example.test", True),), "dkim_tempfailed": ()}
    ctx.runner._results["dkim"] = LayerResult("dkim", {"signatures": [
        {"d": "example.test", "s": "sel1", "i": "", "result": "pass"}]})
    assert plugin_inputs(ctx)[0]["DKIM_VALID_AU"] == 1 == plugin_inputs(ctx)[0]["DKIM_VALID_EF"]
