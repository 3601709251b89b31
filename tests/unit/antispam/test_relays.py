"""The trust path (gateway_milter/antispam/relays.py): Received headers of several MTAs parsed
into SpamAssassin's relay records, the trusted/internal split (inference and configured
networks), and the X-Spam-Relays-* / ALL-EXTERNAL pseudo-headers seen by rules."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway_milter.antispam.engine import engine_for
from gateway_milter.antispam.relays import NetSet, TrustConfig, parse_network, parse_received, relay_path
from gateway_milter.antispam.saview import message_view
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.layers.base import SettingsError
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

POSTFIX = ("from mail.sender.test (mail.sender.test [198.51.100.20])\n\tby mx.example.com (Postfix) with ESMTPS id"
           " 4XyZ1A2b3c\n\tfor <bob@example.com>; Tue,  1 Oct 2024 10:00:00 +0200 (CEST)")
POSTFIX_NO_RDNS = ("from pc42 (unknown [198.51.100.33])\n\tby mx.example.com (Postfix) with SMTP id 4XyZ1A2b3d;"
                   " Tue,  1 Oct 2024 10:00:00 +0200 (CEST)")
POSTFIX_AUTH_V6 = ("from [IPv6:2001:db8:5::10] (unknown [IPv6:2001:db8:5::10])\n\t(Authenticated sender: alice)\n\t"
                   "by smtp.sender.test (Postfix) with ESMTPSA id 4Q1w2e3r4t\n\tfor <bob@example.com>;"
                   " Tue,  1 Oct 2024 09:59:58 +0200 (CEST)")
SENDMAIL = ("from roissy (p573.dyn.example.net [203.0.113.61] (may be forged))\n\tby relay.example.com"
            " (8.15.2/8.15.2) with ESMTP id 491A0abc012345\n\tfor <bob@example.com>; Tue, 1 Oct 2024 10:00:00 +0200")
SENDMAIL_IDENT = ("from lugh.example.org (root@lugh.example.org [192.0.2.45])\n\tby dogma.example.com (8.11.6/8.11.6)"
                  " with ESMTP id g72LqWv13294; Fri, 2 Aug 2002 22:52:32 +0100")
EXIM = ("from dsl-66-92-72-213.example.net ([66.92.72.213] helo=blazing.example.org)\n\tby lists.example.com with"
        " esmtp (Exim 4.96)\n\t(envelope-from <list-bounces@example.org>)\n\tid 1qXyZa-000123-AB\n\tfor"
        " bob@example.com; Tue, 01 Oct 2024 10:00:00 +0000")
EXIM_AUTH = ("from [192.168.1.10] (helo=laptop)\n\tby smtp.sender.test with esmtpsa (TLS1.3) tls"
             " TLS_AES_256_GCM_SHA384\n\t(Exim 4.96)\n\t(envelope-from <a@sender.test>)\n\tid 1qXyZa-000124-CD\n\t"
             "for bob@example.com; Tue, 01 Oct 2024 10:00:00 +0000")
QMAIL = ("from postfix3-2.free.example (HELO machine.domain.example) (foobar@213.228.0.169)\n  by totor.example.net"
         " with SMTP; 14 Nov 2003 08:05:50 -0000")
QMAIL_LOCAL = "(qmail 27981 invoked by uid 225); 14 Mar 2003 07:24:34 -0000"
EXCHANGE_SMTPSVC = ("from inet-vrs-05.corp.example.com ([157.54.6.157]) by INET-IMC-05.corp.example.com with"
                    " Microsoft SMTPSVC(5.0.2195.6624);\n\t Thu, 6 Mar 2003 12:02:35 -0800")
EXCHANGE_MAPI = ("from AM5PR0402MB2836.eurprd04.prod.example.com\n ([fe80::19bd:c588:dd17:5226]) by"
                 " AM5PR0402MB2836.eurprd04.prod.example.com\n ([fe80::19bd:c588:dd17:5226%6]) with mapi id"
                 " 15.20.1943.023;\n Wed, 5 Jun 2019 10:17:08 +0000")
FETCHMAIL = ("from pop.example.net [192.0.2.99]\n\tby localhost with POP3 (fetchmail-6.4.37)\n\tfor <bob@localhost>"
             " (single-drop); Tue, 01 Oct 2024 10:05:00 +0200 (CEST)")
LOCALHOST = ("from localhost (localhost [127.0.0.1])\n\tby mx.example.com (Postfix) with ESMTP id 3C4D443F99\n\tfor"
             " <bob@localhost>; Tue,  1 Oct 2024 10:00:01 +0200 (CEST)")


def rec(header: str) -> str:
    r = parse_received(header)
    assert r is not None
    return r.as_string()


@pytest.mark.parametrize("header, expected", [
    (POSTFIX, "[ ip=198.51.100.20 rdns=mail.sender.test helo=mail.sender.test by=mx.example.com ident= envfrom="
              " intl=0 id=4XyZ1A2b3c auth= msa=0 ]"),
    (POSTFIX_NO_RDNS, "[ ip=198.51.100.33 rdns= helo=pc42 by=mx.example.com ident= envfrom= intl=0"
                      " id=4XyZ1A2b3d auth= msa=0 ]"),
    (POSTFIX_AUTH_V6, "[ ip=2001:db8:5::10 rdns= helo=!IPv6:2001:db8:5::10! by=smtp.sender.test ident= envfrom="
                      " intl=0 id=4Q1w2e3r4t auth=ESMTPSA msa=0 ]"),
    (SENDMAIL, "[ ip=203.0.113.61 rdns=p573.dyn.example.net helo=roissy by=relay.example.com ident= envfrom= intl=0"
               " id=491A0abc012345 auth= msa=0 ]"),
    (SENDMAIL_IDENT, "[ ip=192.0.2.45 rdns=lugh.example.org helo=lugh.example.org by=dogma.example.com ident=root"
                     " envfrom= intl=0 id=g72LqWv13294 auth= msa=0 ]"),
    (EXIM, "[ ip=66.92.72.213 rdns=dsl-66-92-72-213.example.net helo=blazing.example.org by=lists.example.com ident="
           " envfrom=list-bounces@example.org intl=0 id=1qXyZa-000123-AB auth= msa=0 ]"),
    (EXIM_AUTH, "[ ip=192.168.1.10 rdns= helo=laptop by=smtp.sender.test ident= envfrom=a@sender.test intl=0"
                " id=1qXyZa-000124-CD auth=esmtpsa msa=0 ]"),
    (QMAIL, "[ ip=213.228.0.169 rdns=postfix3-2.free.example helo=machine.domain.example by=totor.example.net"
            " ident=foobar envfrom= intl=0 id= auth= msa=0 ]"),
    (EXCHANGE_SMTPSVC, "[ ip=157.54.6.157 rdns= helo=inet-vrs-05.corp.example.com by=INET-IMC-05.corp.example.com"
                       " ident= envfrom= intl=0 id= auth= msa=0 ]"),
    (EXCHANGE_MAPI, "[ ip=fe80::19bd:c588:dd17:5226 rdns= helo=AM5PR0402MB2836.eurprd04.prod.example.com"
                    " by=AM5PR0402MB2836.eurprd04.prod.example.com ident= envfrom= intl=0 id= auth= msa=0 ]"),
])
def test_it_parses_received_headers_of_each_mta(header: str, expected: str) -> None:
    assert rec(header) == expected


def test_it_tells_no_rdns_from_rdns_not_recorded() -> None:
    # Postfix looks the name up: "unknown" means there is none; Exchange never records it
    r = parse_received(POSTFIX_NO_RDNS)
    assert r is not None and r.no_reverse_dns and not r.rdns_not_in_headers
    r = parse_received(EXCHANGE_SMTPSVC)
    assert r is not None and r.rdns_not_in_headers and not r.no_reverse_dns


def test_it_skips_local_handovers_and_counts_unparseable_ones() -> None:
    p = relay_path([QMAIL_LOCAL, "from weird stuff nobody writes", POSTFIX])
    assert p.unparseable == 1
    assert [r.ip for r in p.untrusted] == ["198.51.100.20"]


def test_it_infers_trust_from_private_addresses_and_authentication() -> None:
    # newest first: our localhost hand-over, the MX's record of an authenticated client, then the
    # client's own submission from a private network
    p = relay_path([LOCALHOST, POSTFIX_AUTH_V6, EXIM_AUTH, POSTFIX])
    assert [r.ip for r in p.trusted] == ["127.0.0.1", "2001:db8:5::10", "192.168.1.10"]
    assert [r.ip for r in p.untrusted] == ["198.51.100.20"]
    assert p.internal == p.trusted and p.external == p.untrusted  # internal = trusted when inferred
    assert p.pseudo_header("Internal").count("intl=1") == 3
    assert p.pseudo_header("external") == ("[ ip=198.51.100.20 rdns=mail.sender.test helo=mail.sender.test"
                                           " by=mx.example.com ident= envfrom= intl=0 id=4XyZ1A2b3c auth= msa=0 ]")
    assert p.last_trusted_index == 2 and p.last_internal_index == 2


def test_it_stops_trusting_at_the_first_public_unauthenticated_relay() -> None:
    # once untrusted, a later private address does not restore trust
    p = relay_path([POSTFIX, EXIM_AUTH])
    assert p.trusted == [] and [r.ip for r in p.untrusted] == ["198.51.100.20", "192.168.1.10"]


def test_it_uses_configured_networks_with_exclusions_and_loopback() -> None:
    trust = TrustConfig(trusted=("198.51.100.0/24", "!198.51.100.33"), internal=("198.51.100.16/28",))
    p = relay_path([LOCALHOST, POSTFIX, POSTFIX_NO_RDNS, SENDMAIL], trust)
    assert [r.ip for r in p.trusted] == ["127.0.0.1", "198.51.100.20"]
    assert [r.ip for r in p.internal] == ["127.0.0.1", "198.51.100.20"]
    assert [r.ip for r in p.untrusted] == ["198.51.100.33", "203.0.113.61"]
    # with networks configured, a private address is no longer trusted by itself
    p = relay_path([EXIM, EXIM_AUTH], TrustConfig(trusted=("66.92.72.0/24",), internal=("10.0.0.0/8",)))
    assert [r.ip for r in p.trusted] == ["66.92.72.213", "192.168.1.10"]  # the second authenticated
    assert p.internal == [] and p.trusted[0].internal is False


def test_it_keeps_the_status_of_relays_behind_an_msa() -> None:
    trust = TrustConfig(trusted=("198.51.100.0/24",), msa=("198.51.100.20",))
    p = relay_path([POSTFIX, SENDMAIL], trust)
    assert [r.ip for r in p.trusted] == ["198.51.100.20", "203.0.113.61"]
    assert p.trusted[0].msa and "msa=1" in p.pseudo_header("trusted")


def test_an_authenticated_client_makes_the_first_outside_relay_the_submission_hop() -> None:
    p = relay_path([POSTFIX, SENDMAIL, EXIM], TrustConfig(trusted=("198.51.100.0/24",), originating=True))
    assert [r.ip for r in p.trusted] == ["198.51.100.20", "203.0.113.61", "66.92.72.213"]
    assert [r.ip for r in p.internal] == ["198.51.100.20"]
    view = message_view(make_ctx(raw_with([POSTFIX, SENDMAIL]), policy(trusted=["198.51.100.0/24"]), auth="alice"))
    assert view.trust.originating and "203.0.113.61" in (view.header("X-Spam-Relays-Trusted") or "")
    view = message_view(make_ctx(raw_with([POSTFIX, SENDMAIL]), policy(trusted=["198.51.100.0/24"]), ip="198.51.100.20"))
    assert not view.trust.originating and "203.0.113.61" in (view.header("X-Spam-Relays-Untrusted") or "")


def test_it_restarts_at_a_fetchmail_marker_inside_the_trusted_part() -> None:
    p = relay_path([LOCALHOST, FETCHMAIL, POSTFIX])
    assert p.trusted == [] and [r.ip for r in p.external] == ["198.51.100.20"]


def test_it_adds_the_originating_ip_as_the_oldest_relay() -> None:
    p = relay_path([POSTFIX], originating_ips=["[203.0.113.200]"])
    assert p.untrusted[-1].as_string() == ("[ ip=203.0.113.200 rdns= helo= by= ident= envfrom= intl=0 id= auth="
                                           " msa=0 ]")


def test_netsets_follow_spamassassin_syntax() -> None:
    assert str(parse_network("192.168.")) == "192.168.0.0/16"
    assert str(parse_network("10.0.1/24")) == "10.0.1.0/24"
    assert str(parse_network("[2001:db8::1]")) == "2001:db8::1/128"
    s = NetSet(["!10.0.1.5", "10.0.1/24"])
    assert s.contains("10.0.1.6") and not s.contains("10.0.1.5") and s.contains("127.0.0.2") and s.contains("::1")
    assert s.contains("::ffff:10.0.1.7") and not s.contains("!1.2.3.4!")


def test_rules_settings_reject_bad_networks() -> None:
    with pytest.raises(SettingsError):
        PolicySnapshot.from_document({"settings": {"rules": {"internal_networks": ["not-a-net"]}}})


def test_it_bounds_hostile_received_headers() -> None:
    nasty = "from a (HELO b) (1.2.3.4) by c" + " (x)" * 3000 + " with SMTP id x"
    t0 = time.process_time()
    p = relay_path([nasty] * 300)
    assert time.process_time() - t0 < 5.0
    assert len(p.untrusted) + p.unparseable <= 200


RELAY_RULES = r"""
header __RDNS_NONE  X-Spam-Relays-External =~ /^[^\]]+ rdns= /
meta   LOCAL_RDNS_NONE __RDNS_NONE
score  LOCAL_RDNS_NONE 1.0
header LOCAL_HELO_NO_DOT X-Spam-Relays-Untrusted =~ /^[^\]]+ helo=[a-zA-Z0-9-_]+ /
score  LOCAL_HELO_NO_DOT 0.5
header LOCAL_AUTH_FIRST X-Spam-Relays-Trusted =~ / auth=\S/
score  LOCAL_AUTH_FIRST -0.5
header LOCAL_RELAYED_EXT ALL-EXTERNAL =~ /(?:^|\n)Received:\s.+\nReceived:\s/s
score  LOCAL_RELAYED_EXT 0.1
"""


def raw_with(received: list[str]) -> bytes:
    head = "".join(f"Received: {r.replace(chr(10), chr(13) + chr(10))}\r\n" for r in received)
    return head.encode() + msg()


def test_rules_read_the_pseudo_headers(tmp_path: Path) -> None:
    eng = engine_for((str(write_rules(tmp_path, RELAY_RULES)),), 2, include_default=False)
    assert not eng.unsupported
    view = message_view(make_ctx(raw_with([POSTFIX_NO_RDNS, EXIM])))
    hits = {h.name for h in eng.run(view).hits}
    assert hits == {"LOCAL_RDNS_NONE", "LOCAL_HELO_NO_DOT", "LOCAL_RELAYED_EXT"}
    view = message_view(make_ctx(raw_with([POSTFIX, EXIM_AUTH])))
    assert {h.name for h in eng.run(view).hits} == {"LOCAL_RELAYED_EXT"}
    view = message_view(make_ctx(raw_with([EXIM_AUTH])))
    assert {h.name for h in eng.run(view).hits} == {"LOCAL_AUTH_FIRST"}
    # a forged pseudo-header in the message is not what rules see
    view = message_view(make_ctx(b"X-Spam-Relays-External: [ ip=1.2.3.4 rdns= ]\r\n" + raw_with([POSTFIX])))
    assert "rdns=mail.sender.test" in (view.header("X-Spam-Relays-External") or "")


def test_the_view_takes_the_gateway_trusted_networks_by_default() -> None:
    raw = raw_with([POSTFIX, SENDMAIL])
    view = message_view(make_ctx(raw, policy(trusted=["198.51.100.0/24"])))
    assert view.trust.trusted == ("198.51.100.0/24",)
    assert "198.51.100.20" in (view.header("X-Spam-Relays-Trusted") or "")
    view = message_view(make_ctx(raw, policy({"rules": {"trust_policy_networks": False}}, trusted=["198.51.100.0/24"])))
    assert view.header("X-Spam-Relays-Trusted") == ""
    view = message_view(make_ctx(raw, policy({"rules": {"trusted_networks": ["203.0.113.0/24"]}},
                                             trusted=["198.51.100.0/24"])))
    assert view.trust.trusted == ("203.0.113.0/24",) and view.header("X-Spam-Relays-Trusted") == ""


def test_debian_relay_rules_are_supported_when_the_set_is_present() -> None:
    from gateway_milter.layers.rules import RulesSettings, engine_from_settings

    try:
        eng = engine_from_settings(RulesSettings())
    except (OSError, ValueError):
        pytest.skip("Debian's spamassassin rules are not installed")
    if not eng.rules:
        pytest.skip("Debian's spamassassin rules are not installed")
    assert not [n for n, why in eng.unsupported.items() if "X-Spam-Relays" in why]
    view = message_view(make_ctx(raw_with([POSTFIX_NO_RDNS, EXIM])))
    assert "RDNS_NONE" in {h.name for h in eng.run(view).hits}


# each header below is one an expression behind a literal check reads (relays.parse_received):
# the check must let it through, whatever the case of the envelope-sender's words
GUARDED = [
    ("from mx.sender.test ([192.0.2.7]) (AUTH: LOGIN alice) by mail.example.com with ESMTP; Tue, 1 Oct 2024 10:00:00"
     " +0000", "auth", "LOGIN"),
    ("from alice (HELO laptop) [192.0.2.8] by mail.gmx.net (mp-eu001) with ESMTP; Tue, 1 Oct 2024 10:00:00 +0000",
     "auth", "GMX (ESMTP / mail.gmx.net)"),
    ("from pc (pc.sender.test [192.0.2.9]) (Authenticated sender: alice) by mx.example.com (Postfix) with ESMTP"
     " id 4Q1; Tue, 1 Oct 2024 10:00:00 +0000", "auth", "Postfix"),
    ("from pc.sender.test (HELO laptop.sender.test) (192.0.2.10) by mx.example.com with SMTP; 1 Oct 2024 10:00:00"
     " -0000", "helo", "laptop.sender.test"),
    ("from dsl.example.net ([192.0.2.11] helo=box.example.org) by lists.example.com with esmtp (Exim 4.96)"
     " (ENVELOPE-FROM <list@example.org>) id 1qX; Tue, 01 Oct 2024 10:00:00 +0000", "envfrom", "list@example.org"),
    ("from dsl.example.net ([192.0.2.12] helo=box.example.org) by lists.example.com with esmtp (Exim 4.96)"
     " (Envelope-Sender=<a@example.org>) id 1qY; Tue, 01 Oct 2024 10:00:00 +0000", "envfrom", "a@example.org"),
]


@pytest.mark.parametrize(("header", "field", "want"), GUARDED)
def test_expressions_behind_a_literal_check_still_read_their_headers(header: str, field: str, want: str) -> None:
    relay = parse_received(header)
    assert relay is not None and getattr(relay, field) == want


def test_a_local_delivery_line_is_still_skipped() -> None:
    from gateway_milter.antispam.relays import _Skip

    with pytest.raises(_Skip):
        parse_received("from alice by mail.example.com with local for bob@example.com; Tue, 1 Oct 2024 10:00:00 +0000")
