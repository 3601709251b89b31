"""The rule files are read as SpamAssassin reads them with its DKIM and SPF plugins loaded
(Debian's v310.pre and v312.pre load both): a rule written twice, for with and without a plugin,
is the "with" one. Before, the gateway read the "without" variants, though its dkim and spf
layers answer the plugins' rules: Debian's ``__NOT_SPOOFED`` was then "any DKIM-Signature
field" instead of ``SPF_PASS || DKIM_VALID || ...``, so a forged signature field turned off
KHOP_HELO_FCRDNS, SPOOFED_FREEMAIL and some twenty other rules (rspamd's bad_message.eml and
arcallow.eml in the odd-MIME differential). The expected hits are what Debian's spamassassin
reported for these rules and messages (tests/integration/antispam/test_sa_differential.py runs
them again); SpamAssassin runs with local tests only, where DKIM_VALID and SPF_PASS read 0, as
ours do when the dkim and spf layers have not run."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.sarules import DEFAULT_DIRS, load_rules
from tests.unit.antispam.helpers import assert_rule_hits, write_rules

RULES = r"""
header   __T_DKIM_FIELD    exists:DKIM-Signature
if !plugin(Mail::SpamAssassin::Plugin::DKIM)
  meta   T_NOT_SPOOFED     __T_DKIM_FIELD
endif
if !(!plugin(Mail::SpamAssassin::Plugin::DKIM))
  meta   T_NOT_SPOOFED     DKIM_VALID
endif
score    T_NOT_SPOOFED     0.01
ifplugin Mail::SpamAssassin::Plugin::DKIM
  meta   T_SIGNED_NOT_VALID  __T_DKIM_FIELD && !DKIM_VALID
  score  T_SIGNED_NOT_VALID  0.01
  meta   T_DEPENDABLE      __DKIM_DEPENDABLE
  score  T_DEPENDABLE      0.01
endif
ifplugin Mail::SpamAssassin::Plugin::SPF
  body   T_SPF_BLOCK       /meeting/
  score  T_SPF_BLOCK       0.01
endif
if !plugin(Mail::SpamAssassin::Plugin::SPF)
  body   T_NO_SPF_BLOCK    /meeting/
  score  T_NO_SPF_BLOCK    0.01
endif
"""
SCORED = ["T_NOT_SPOOFED", "T_SIGNED_NOT_VALID", "T_DEPENDABLE", "T_SPF_BLOCK", "T_NO_SPF_BLOCK"]


def _msg(extra: bytes = b"") -> bytes:
    return (extra + b"From: Joe <joe@sender.test>\r\nTo: bob@example.com\r\nSubject: x\r\n"
            b"Message-ID: <m1@sender.test>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\n"
            b"See you at the meeting.\r\n")


FORGED = (b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=sel; c=relaxed/relaxed;\r\n"
          b"\th=from:to:subject; bh=AAAA; b=AAAA\r\n")
MESSAGES = {
    "forged_signature_field": (_msg(FORGED), {"T_SIGNED_NOT_VALID", "T_SPF_BLOCK"}),
    "unsigned": (_msg(), {"T_SPF_BLOCK"}),
}


def test_the_rules_are_read_with_the_dkim_and_spf_plugins(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)


@pytest.mark.skipif(not any(d.is_dir() for d in DEFAULT_DIRS), reason="Debian's spamassassin rules are not installed")
def test_debians_not_spoofed_is_the_variant_with_both_plugins() -> None:
    rs = load_rules()
    assert set(rs.rules["__NOT_SPOOFED"].deps) >= {"SPF_PASS", "DKIM_VALID"}
    assert "__DKIM_EXISTS" not in rs.rules["__NOT_SPOOFED"].deps
    # the plugins' own rules are network tests the dkim and spf layers answer: never run here
    assert {"DKIM_VALID_AU", "SPF_PASS", "SPF_HELO_FAIL"} <= set(rs.skipped)
    # (check_dkim_valid runs on the dkim layer's signatures: DKIM_VALID, and __RESIGNER1 with
    # its signing domain, which the NML_ADSP_* metas read; tests/unit/auth/test_rules_adsp.py)
    assert "DKIM_VALID" in rs.rules and "DKIM_VALID" not in rs.skipped
    # the one that is no network test is ours (the dkim layer's answer, checked in
    # tests/unit/auth/test_rules_plugin_variants.py, as the welcome-lists below are)
    assert "__DKIM_DEPENDABLE" in rs.rules and "__DKIM_DEPENDABLE" not in rs.unsupported
    # the plugins' welcome-lists run, on the layers' answers (authlists), with Debian's entries
    assert {"USER_IN_DEF_DKIM_WL", "USER_IN_DKIM_WELCOMELIST", "USER_IN_DEF_SPF_WL", "USER_IN_SPF_WELCOMELIST",
            "ENV_AND_HDR_SPF_MATCH"} <= set(rs.rules)
    assert len(rs.addrlists["def_welcomelist_auth"]) > 800 and len(rs.rcvdlists["def_welcomelist_from_dkim"]) > 80
    assert "*@*.ebay.com" in rs.addrlists["def_welcomelist_auth"]
    # and the signing practices Debian assumes for the domains phishing names
    assert rs.adsp_override["paypal.com"] == "D" and rs.adsp_override["amazon.com"] == "A"
    assert len(rs.adsp_override) > 80


def test_the_un_directives_take_welcome_list_entries_off(tmp_path: Path) -> None:
    """``unwelcomelist_auth`` and ``unwelcomelist_from_spf`` take an entry off the list and off
    its default list; ``unwelcomelist_from_dkim ADDR [DOMAIN]`` takes that domain off the
    address's entry in both (Conf.pm, SPF.pm and DKIM.pm), so a site can undo a default entry."""
    text = ("def_welcomelist_auth *@shop.example *@bank.example\nwelcomelist_auth *@shop.example\n"
            "def_welcomelist_from_spf *@shop.example\n"
            "def_welcomelist_from_dkim *@shop.example shop.example\ndef_welcomelist_from_dkim *@shop.example mail.example\n"
            "whitelist_from_dkim *@shop.example\n"
            "unwelcomelist_auth *@SHOP.example\nunwhitelist_from_spf *@shop.example\n"
            "unwelcomelist_from_dkim *@shop.example mail.example\nunwelcomelist_from_dkim *@shop.example\n")
    rs = load_rules([write_rules(tmp_path, text)])
    assert rs.addrlists["def_welcomelist_auth"] == {"*@bank.example": "*@bank.example"}
    assert rs.addrlists["welcomelist_auth"] == {} and rs.addrlists["def_welcomelist_from_spf"] == {}
    assert rs.rcvdlists["def_welcomelist_from_dkim"] == {"*@shop.example": ["shop.example"]}
    assert rs.rcvdlists["welcomelist_from_dkim"] == {}
