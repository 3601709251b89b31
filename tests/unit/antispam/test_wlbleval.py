"""SpamAssassin's WLBLEval functions (wlbleval.py): address lists, welcome lists with a relay,
URI host lists and the envelope sender against the first untrusted relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.engine import RuleEngine, engine_for
from gateway_milter.antispam.sarules import DEFAULT_DIRS, load_rules
from gateway_milter.antispam.saview import SaMessage, message_view
from gateway_milter.antispam.wlbleval import AddrList, glob_regex, split_domain
from tests.unit.antispam.helpers import make_ctx, write_rules

RULES = r"""
enlist_addrlist (BANKS)   *@bank.test *@*.bank.test
enlist_addrlist (BANKS)   payments@other.test
enlist_addrlist (GONE)    x@gone.test
header T_FROM_BANK        eval:check_from_in_list('BANKS')
header T_REPLYTO_BANK     eval:check_replyto_in_list('BANKS')
header T_TO_BANK          eval:check_to_in_list('BANKS')
header T_FROM_NOLIST      eval:check_from_in_list('NO_SUCH_LIST')
header T_RP_MATCHES_RCVD  eval:check_mailfrom_matches_rcvd()
welcomelist_from          friend@pals.test
blacklist_from            *@spammer.test
unwhitelist_from          nobody@pals.test
welcomelist_from_rcvd     *@shop.test mail.shop.test
def_welcomelist_from_rcvd *@corp.test [198.51.100.0/24]
more_spam_to              bob@example.com
header T_WELCOME          eval:check_from_in_welcomelist()
header T_FORGED           eval:check_forged_in_welcomelist()
header T_DEF_WELCOME      eval:check_from_in_default_welcomelist()
header T_DEF_FORGED       eval:check_forged_in_default_whitelist()
header T_BLOCK            eval:check_from_in_blocklist()
header T_MORE_SPAM        eval:check_to_in_more_spam()
enlist_uri_host (SHORT)   shorty.net !safe.shorty.net gone.shorty.net
blocklist_uri_host        evil-site.org
delist_uri_host (SHORT)   gone.shorty.net
header T_URI_SHORT        eval:check_uri_host_listed('SHORT')
header T_URI_BLOCK        eval:check_uri_host_in_blocklist()
header T_URI_WELCOME      eval:check_uri_host_in_welcomelist()
"""
NAMES = [line.split()[1] for line in RULES.strip().splitlines() if line.startswith("header ")]
for _n in NAMES:
    RULES += f"score {_n} 1\n"


def rcvd(rdns: str, ip: str) -> str:
    return (f"Received: from {rdns} ({rdns} [{ip}])\r\n\tby mx.example.com (Postfix) with ESMTP id 4XyZ1;"
            " Tue,  1 Oct 2024 10:00:00 +0200\r\n")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> RuleEngine:
    d = write_rules(tmp_path_factory.mktemp("wlbl"), RULES)
    return engine_for((str(d),), 2, include_default=False)


def view(frm: str, *, mail_from: str, rdns: str = "mail.sender.test", ip: str = "198.51.100.20",
         extra: str = "", body: str = "Hello there.\r\n") -> SaMessage:
    raw = (rcvd(rdns, ip) + f"From: {frm}\r\nTo: bob@example.com\r\nSubject: hi\r\nMessage-ID: <1@x.test>\r\n"
           f"Date: Tue, 1 Oct 2024 10:00:00 +0200\r\n{extra}MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body).encode()
    return message_view(make_ctx(raw, mail_from=mail_from))


def hits(engine: RuleEngine, v: SaMessage) -> set[str]:
    assert not engine.unsupported, engine.unsupported
    return {h.name for h in engine.run(v).hits}


def test_globs_are_literal_but_for_star_and_question_mark() -> None:
    assert glob_regex("*@paypal.com") == r".*@paypal\.com"
    lst = AddrList.of(["*@paypal.com", "a?c@x.test", "odd+(x)@y.test"])
    assert lst.match("Service@PayPal.com") and lst.match("abc@x.test")
    assert not lst.match("service@paypal.com.evil.test") and not lst.match("service@paypalxcom")
    assert not lst.match("abbc@x.test")
    assert lst.match("odd+(x)@y.test")  # an exact entry, looked up as written
    assert not AddrList.of([]).match("a@b.test")


def test_split_domain_follows_the_rule_files_second_and_third_level_lists() -> None:
    two, three = frozenset({"co.uk"}), frozenset({"demon.co.uk"})
    assert split_domain("mail.foo.co.uk", two, three) == ("mail", "foo.co.uk")
    assert split_domain("a.b.demon.co.uk", two, three) == ("a", "b.demon.co.uk")
    assert split_domain("www..example.com.", two, three) == ("www", "example.com")
    assert split_domain("x.city.ca.us", two, three) == ("", "x.city.ca.us")
    assert split_domain("example.com", two, three) == ("", "example.com")


def test_address_lists_from_reply_to_and_recipients(engine: RuleEngine) -> None:
    assert "T_FROM_BANK" in hits(engine, view("Bank <alerts@secure.bank.test>", mail_from="b@elsewhere.test"))
    assert "T_FROM_BANK" in hits(engine, view("x@elsewhere.test", mail_from="payments@other.test"))  # envelope
    plain = hits(engine, view("x@elsewhere.test", mail_from="y@elsewhere.test"))
    assert not plain & {"T_FROM_BANK", "T_REPLYTO_BANK", "T_TO_BANK", "T_FROM_NOLIST"}
    assert "T_FROM_BANK" not in hits(engine, view("x@bank.test.evil.test", mail_from="y@evil.test"))
    got = hits(engine, view("x@elsewhere.test", mail_from="y@elsewhere.test", extra="Reply-To: desk@bank.test\r\n"))
    assert "T_REPLYTO_BANK" in got and "T_FROM_BANK" not in got
    assert "T_TO_BANK" in hits(engine, view("x@e.test", mail_from="y@e.test", extra="Cc: payments@other.test\r\n"))


def test_the_envelope_sender_against_the_first_untrusted_relay(engine: RuleEngine) -> None:
    assert "T_RP_MATCHES_RCVD" in hits(engine, view("a@sender.test", mail_from="bounce@news.sender.test",
                                                    rdns="out3.mail.sender.test"))
    assert "T_RP_MATCHES_RCVD" not in hits(engine, view("a@sender.test", mail_from="a@sender.test",
                                                        rdns="mx.bulk-host.test"))
    assert "T_RP_MATCHES_RCVD" not in hits(engine, view("a@sender.test", mail_from="", rdns="mail.sender.test"))


def test_welcome_and_block_lists(engine: RuleEngine) -> None:
    assert "T_WELCOME" in hits(engine, view("Friend <friend@pals.test>", mail_from="friend@pals.test"))
    assert "T_BLOCK" in hits(engine, view("x@spammer.test", mail_from="x@spammer.test"))
    # listed with a relay: the relay's rDNS must end in the listed name
    assert "T_WELCOME" in hits(engine, view("s@shop.test", mail_from="s@shop.test", rdns="mail.shop.test"))
    forged = hits(engine, view("s@shop.test", mail_from="s@shop.test", rdns="mail.elsewhere.test"))
    assert "T_FORGED" in forged and "T_WELCOME" not in forged
    # the default list by IP network
    assert "T_DEF_WELCOME" in hits(engine, view("c@corp.test", mail_from="c@corp.test", ip="198.51.100.77"))
    assert "T_DEF_FORGED" in hits(engine, view("c@corp.test", mail_from="c@corp.test", ip="203.0.113.9"))
    assert "T_MORE_SPAM" in hits(engine, view("x@y.test", mail_from="x@y.test"))  # To: bob@example.com
    plain = hits(engine, view("x@y.test", mail_from="x@y.test"))
    assert not plain & {"T_WELCOME", "T_FORGED", "T_DEF_WELCOME", "T_DEF_FORGED", "T_BLOCK"}


def test_uri_host_lists(engine: RuleEngine) -> None:
    def uri_hits(link: str) -> set[str]:
        return hits(engine, view("x@y.test", mail_from="x@y.test", body=f"See {link} now.\r\n"))

    # (hosts need a known top-level domain to count as URIs: .test is none)
    assert "T_URI_SHORT" in uri_hits("http://abc.shorty.net/x1")
    assert "T_URI_SHORT" in uri_hits("http://gone.shorty.net/x1")  # delisted, but its parent is listed
    assert "T_URI_SHORT" not in uri_hits("http://safe.shorty.net/x1")  # the ! exception is more specific
    assert "T_URI_SHORT" not in uri_hits("http://notshorty.net/x1")
    assert "T_URI_BLOCK" in uri_hits("https://www.evil-site.org/login")
    assert not uri_hits("http://example.com/") & {"T_URI_SHORT", "T_URI_BLOCK", "T_URI_WELCOME"}
    assert "T_URI_SHORT" not in uri_hits("mailto:someone@abc.shorty.net")


def test_the_lists_are_read_from_the_rule_files(tmp_path: Path) -> None:
    rs = load_rules([write_rules(tmp_path, RULES)])
    assert set(rs.addrlists["BANKS"]) == {"*@bank.test", "*@*.bank.test", "payments@other.test"}
    assert rs.addrlists["welcomelist_from"] == {"friend@pals.test": "friend@pals.test"}
    assert rs.addrlists["blocklist_from"] == {"*@spammer.test": "*@spammer.test"}
    assert rs.rcvdlists["def_welcomelist_from_rcvd"] == {"*@corp.test": ["[198.51.100.0/24]"]}
    assert rs.uri_host_lists["SHORT"] == {"shorty.net": True, "safe.shorty.net": False}
    assert rs.uri_host_lists["BLOCK"] == {"evil-site.org": True}


@pytest.mark.skipif(not any(d.is_dir() for d in DEFAULT_DIRS), reason="SpamAssassin's rule files are not installed")
def test_the_debian_rules_that_need_wlbleval_run() -> None:
    eng = engine_for((), 2, include_default=True)
    assert "__RP_MATCHES_RCVD" in eng.rules and eng.rules["__RP_MATCHES_RCVD"].eval_fn == "check_mailfrom_matches_rcvd"
    assert not [n for n, why in eng.unsupported.items() if "list" in why]
