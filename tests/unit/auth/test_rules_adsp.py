"""The DKIM plugin's signing-practices rules (``DKIM_ADSP_*``, and the ``NML_ADSP_*`` metas that
leave out mail through a list or a re-signing remailer): an author domain without a valid
signature of its own whose practices an ``adsp_override`` entry of the rule files names
(Debian's name eBay, PayPal, Amazon, banks: mail in their name that they did not sign). As
DKIM.pm's _check_dkim_adsp: the domain's own entry, then ``*.`` entries of its parents, then
``*``; not when the author's own signature is valid or its key lookup failed; nothing where
the dkim layer has not run. ``check_dkim_valid`` with domains (``__RESIGNER1``) asks for a
valid signature by one of them.

Real signatures against zone data, as tests/unit/auth/test_rules_auth_results.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.sarules import DEFAULT_DIRS
from gateway_milter.auth.keystore import KeyStore
from gateway_milter.context import MessageContext
from gateway_milter.pipeline.runner import LayerResult
from tests.unit.auth.auth_helpers import make_ctx, message, rules_doc
from tests.unit.auth.test_rules_auth_results import keys, signed, zone  # noqa: F401 (fixtures)

RULES = r"""
ifplugin Mail::SpamAssassin::Plugin::DKIM
header   DKIM_ADSP_DISCARD      eval:check_dkim_adsp('D')
tflags   DKIM_ADSP_DISCARD      net
score    DKIM_ADSP_DISCARD      1.8
header   DKIM_ADSP_ALL          eval:check_dkim_adsp('A')
tflags   DKIM_ADSP_ALL          net
score    DKIM_ADSP_ALL          0.8
header   DKIM_ADSP_CUSTOM_HIGH  eval:check_dkim_adsp('3')
tflags   DKIM_ADSP_CUSTOM_HIGH  net
score    DKIM_ADSP_CUSTOM_HIGH  0.001
header   LOCAL_ADSP_BANK        eval:check_dkim_adsp('*', '.bank.test')
tflags   LOCAL_ADSP_BANK        net
score    LOCAL_ADSP_BANK        0.5
full     __RESIGNER1            eval:check_dkim_valid('.example.test')
tflags   __RESIGNER1            net
meta     NML_ADSP_CUSTOM_HIGH   DKIM_ADSP_CUSTOM_HIGH && !__RESIGNER1
score    NML_ADSP_CUSTOM_HIGH   2.5
adsp_override example.test
adsp_override *.shop.test     all
adsp_override @bank.test      custom_high
adsp_override odd.test        sometimes
endif
"""
ADSP = {"DKIM_ADSP_DISCARD", "DKIM_ADSP_ALL", "DKIM_ADSP_CUSTOM_HIGH", "LOCAL_ADSP_BANK", "NML_ADSP_CUSTOM_HIGH"}


def adsp(ctx: MessageContext, *, dkim: bool = True) -> set[str]:
    if dkim:
        ctx.layer("dkim")
    return {s.name for s in ctx.layer("rules").symbols} & ADSP


def test_signing_practices_from_the_override_entries(tmp_path: Path, keys: KeyStore) -> None:  # noqa: F811
    doc = rules_doc(tmp_path, RULES)
    # example.test signs all its mail and asks that the rest be discarded
    assert adsp(make_ctx(signed(keys, message()), doc=doc)) == set()
    assert adsp(make_ctx(message(), doc=doc)) == {"DKIM_ADSP_DISCARD"}
    broken = signed(keys, message()).replace(b"Hi Bob", b"Hi Rob")  # its signature fails
    assert adsp(make_ctx(broken, doc=doc)) == {"DKIM_ADSP_DISCARD"}
    # "*.shop.test": its subdomains, not shop.test itself; parents' entries in order
    assert adsp(make_ctx(message(frm="<a@mail.eu.shop.test>"), doc=doc)) == {"DKIM_ADSP_ALL"}
    assert adsp(make_ctx(message(frm="<a@shop.test>"), doc=doc)) == set()
    # a domain no entry names (its DNS record is not fetched) and an entry DKIM.pm refuses
    assert adsp(make_ctx(message(frm="<a@other.test>"), doc=doc)) == set()
    assert adsp(make_ctx(message(frm="<a@odd.test>"), doc=doc)) == set()
    # custom_high, the domain argument, and the meta that leaves out a re-signing remailer
    bank = message(frm="Bank <alerts@bank.test>")
    assert adsp(make_ctx(bank, doc=doc)) == {"DKIM_ADSP_CUSTOM_HIGH", "LOCAL_ADSP_BANK", "NML_ADSP_CUSTOM_HIGH"}
    assert adsp(make_ctx(signed(keys, bank), doc=doc)) == {"DKIM_ADSP_CUSTOM_HIGH", "LOCAL_ADSP_BANK"}


def test_signing_practices_only_from_results_at_hand(tmp_path: Path, keys: KeyStore) -> None:  # noqa: F811
    """The dkim layer has not run (off, exempt, ``manage.py scan``), or the author's own
    signature could not be checked (its key lookup timed out): no practices are applied."""
    doc = rules_doc(tmp_path, RULES)
    assert adsp(make_ctx(message(), doc=doc), dkim=False) == set()
    ctx = make_ctx(message(), doc=doc)
    assert ctx.runner is not None
    ctx.runner._results["dkim"] = LayerResult("dkim", {"signatures": [
        {"d": "example.test", "s": "sel1", "i": "", "result": "temperror"}]})
    assert adsp(ctx, dkim=False) == set()
    ctx = make_ctx(message(), doc=doc)
    assert ctx.runner is not None
    ctx.runner._results["dkim"] = LayerResult("dkim", {"signatures": [
        {"d": "example.test", "s": "sel1", "i": "", "result": "fail"}]})
    assert adsp(ctx, dkim=False) == {"DKIM_ADSP_DISCARD"}


@pytest.mark.skipif(not any(d.is_dir() for d in DEFAULT_DIRS), reason="Debian's spamassassin rules are not installed")
def test_debians_entries_in_score_set_3() -> None:
    """Debian's rule files with network scores: mail in PayPal's name that PayPal did not sign
    gets DKIM_ADSP_DISCARD at Debian's 1.8 points; the default score set scores it 0."""
    phish = message(frm="PayPal <service@paypal.com>", subject="Your account is limited")
    for score_set, expected in ((3, {"DKIM_ADSP_DISCARD": 1.8}), (2, {})):
        doc = {"domains": ["local.test"], "settings": {"rules": {"score_set": score_set, "use_bayes": False}}}
        ctx = make_ctx(phish, mail_from="<service@paypal.com>", doc=doc)
        ctx.layer("dkim")
        got = {s.name: s.score for s in ctx.layer("rules").symbols if "ADSP" in s.name}
        assert got == expected
