"""SpamAssassin eval functions added to saeval (HeaderEval, BodyEval, MIMEEval), each on small
messages written for the test: the rule hits, and the misses next to them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.engine import RuleEngine, engine_for
from gateway_milter.antispam.saview import SaMessage, message_view
from tests.unit.antispam.helpers import make_ctx, write_rules

RULES = r"""
header T_MISSING_TO   eval:check_for_missing_to_header()
header T_USER_IN_SUBJ eval:check_for_to_in_subject('user')
header T_ADDR_IN_SUBJ eval:check_for_to_in_subject('address')
header T_GATED        eval:gated_through_received_hdr_remover()
header T_RATWARE_ID   eval:check_ratware_name_id()
header T_FAKE_AOL     eval:check_for_fake_aol_relay_in_rcvd()
header T_FORGED_HOTMAIL eval:check_for_forged_hotmail_received_headers()
header T_NO_HOTMAIL   eval:check_for_no_hotmail_received_headers()
header T_FORGED_YAHOO eval:check_for_forged_yahoo_received_headers()
header T_FORGED_GMAIL eval:check_for_forged_gmail_received_headers()
header T_FORGED_JUNO  eval:check_for_forged_juno_received_headers()
header T_FORGED_EUDORA eval:check_for_forged_eudoramail_received_headers()
header T_SORTED       eval:sorted_recipients()
header T_SIMILAR      eval:similar_recipients('0.65','undef')
body   T_TVD          eval:tvd_vertical_words('0','10')
body   T_TVD_HIGH     eval:tvd_vertical_words('90','100')
body   T_HTML_MOSTLY  eval:check_mime_multipart_ratio('0.00','0.01')
body   T_MA_NON_TEXT  eval:check_ma_non_text()
body   T_B64_78_79    eval:check_base64_length('78','79')
body   T_B64_79       eval:check_base64_length('79')
body   T_BAD_ISO      eval:check_for_mime('mime_bad_iso_charset')
body   T_B64_TEXT     eval:check_for_mime('mime_base64_encoded_text')
body   T_QP_LONG      eval:check_for_mime('mime_qp_long_line')
body   T_ATTACH       eval:check_for_mime('mime_attachment')
header T_OUTLOOK_ID   eval:check_outlook_message_id()
body   T_FARAWAY      eval:check_for_faraway_charset()
header T_ALL_TRUSTED  eval:check_all_trusted()
header T_NO_RELAYS    eval:check_no_relays()
header T_UNPARSEABLE  eval:check_relays_unparseable()
header T_NUMERIC_HELO eval:check_for_numeric_helo()
header T_HELO_IP_MISMATCH eval:helo_ip_mismatch()
header T_DOTCOM_HELO  eval:check_for_no_rdns_dotcom_helo()
header T_FORGED_TRAIL eval:check_for_forged_received_trail()
header T_FROM_DIFF_DOMAINS eval:check_equal_from_domains()
header T_NAME_8BIT_RAW From:name:raw =~ /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]/
header T_NAME_8BIT From:name =~ /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]/
header T_FM_REPLYTO eval:check_freemail_replyto('replyto')
header T_FM_REPLY eval:check_freemail_replyto('reply')
header T_FM_FROM eval:check_freemail_from()
header T_PAST_3_6 eval:check_for_shifted_date('-6', '-3')
header T_FUTURE_3_6 eval:check_for_shifted_date('3', '6')
freemail_domains freemail.example.com *.webmail.example.net
body   T_BLANK_LINES eval:check_blank_line_ratio('80','90','4')
body   T_STOCK eval:check_stock_info('2')
header T_RATWARE_EFROM eval:check_ratware_envelope_from()
body   T_MIMEPART_LIMIT eval:check_for_mime('mimepart_limit_exceeded')
body   T_MPART_ALT_DIFF eval:multipart_alternative_difference('99', '100')
body   T_MPART_ALT_DIFF_COUNT eval:multipart_alternative_difference_count('3', '1')
"""
NAMES = [line.split()[1] for line in RULES.strip().splitlines()]
for _n in NAMES:
    RULES += f"score {_n} 1\n"

RCVD = ("Received: from mail.sender.test (mail.sender.test [198.51.100.20])\r\n\tby mx.example.com (Postfix) with"
        " ESMTP id 4XyZ1; Tue,  1 Oct 2024 10:00:00 +0200\r\n")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> RuleEngine:
    d = write_rules(tmp_path_factory.mktemp("evals"), RULES)
    return engine_for((str(d),), 2, include_default=False)


def view(head: str, body: str = "Hello there, nothing to see.\r\n", rcvd: str = RCVD,
         ctype: str = "text/plain; charset=us-ascii", mail_from: str = "a@sender.test") -> SaMessage:
    raw = (rcvd + head + f"Date: Tue, 1 Oct 2024 10:00:00 +0200\r\nMIME-Version: 1.0\r\nContent-Type: {ctype}\r\n\r\n"
           + body).encode()
    return message_view(make_ctx(raw, mail_from=mail_from))


def hits(engine: RuleEngine, v: SaMessage) -> set[str]:
    assert not engine.unsupported, engine.unsupported
    return {h.name for h in engine.run(v).hits}


PLAIN = "From: Alice <alice@sender.test>\r\nTo: bob@example.com\r\nSubject: lunch\r\nMessage-ID: <1@sender.test>\r\n"


def test_an_ordinary_message_hits_none(engine: RuleEngine) -> None:
    assert hits(engine, view(PLAIN)) == set()
    assert hits(engine, view(PLAIN, "Hello,again,this,is,all,one,word\r\n")) == {"T_TVD"}


def test_missing_to_and_local_part_in_subject(engine: RuleEngine) -> None:
    assert "T_MISSING_TO" in hits(engine, view("From: a@sender.test\r\nSubject: hi\r\n"))
    assert "T_MISSING_TO" not in hits(engine, view("From: a@sender.test\r\nApparently-To: bob@example.com\r\n"))
    h = hits(engine, view("From: a@sender.test\r\nTo: bob@example.com\r\nSubject: bob, your invoice\r\n"))
    assert "T_USER_IN_SUBJ" in h and "T_ADDR_IN_SUBJ" not in h
    assert "T_USER_IN_SUBJ" not in hits(engine, view("From: a@sender.test\r\nTo: bob@example.com\r\n"
                                                     "Subject: Bob, your invoice\r\n"))  # the user part is case-sensitive
    assert "T_ADDR_IN_SUBJ" in hits(engine, view("From: a@sender.test\r\nTo: bob@example.com\r\n"
                                                 "Subject: news for BOB@example.com today\r\n"))
    assert "T_USER_IN_SUBJ" in hits(engine, view("From: a@sender.test\r\nTo: bob@example.com\r\nSubject: Re: bob\r\n"))


def test_received_trail_removed_by_a_list_or_absent(engine: RuleEngine) -> None:
    assert "T_GATED" in hits(engine, view(PLAIN, rcvd=""))
    ezmlm = ("Mailing-List: contact list-help@lists.example; run by ezmlm\r\n"
             "Delivered-To: mailing list list@lists.example\r\n")
    rcvd = "Received: (qmail 4321 invoked from network); 1 Oct 2024 08:00:00 -0000\r\n" + RCVD
    assert "T_GATED" in hits(engine, view(PLAIN + ezmlm, rcvd=rcvd))
    assert "T_GATED" not in hits(engine, view(PLAIN + ezmlm))


def test_ratware_message_id_and_fake_aol_relay(engine: RuleEngine) -> None:
    head = ('From: "Deals" <x@offers.example>\r\nTo: bob@example.com\r\n'
            "Message-ID: <ABCDEFGHIJKLMNOPQRSTUVWXYZAB.x@offers.example>\r\n")
    assert "T_RATWARE_ID" in hits(engine, view(head))
    aol = "Received: from unknown (HELO mta05.example) (198.51.100.130) by rly-xw01.mx.aol.com with QMQP; 15 Jun 2002\r\n"
    assert "T_FAKE_AOL" in hits(engine, view(PLAIN, rcvd=aol + RCVD))
    real = ("Received: from logs-tr.proxy.aol.com (logs-tr.proxy.aol.com [152.163.201.132]) by rly-ip01.mx.aol.com"
            " (8.8.8/8.8.8/AOL-5.0.0) with ESMTP id NAA08955; Thu, 4 Apr 2002 13:11:20 -0500\r\n")
    assert "T_FAKE_AOL" not in hits(engine, view(PLAIN, rcvd=real + RCVD))


def test_freemail_senders_without_their_providers_received_headers(engine: RuleEngine) -> None:
    def frm(addr: str, extra: str = "", rcvd: str = RCVD) -> set[str]:
        return hits(engine, view(f"From: {addr}\r\nTo: bob@example.com\r\n{extra}", rcvd=rcvd))

    assert {"T_NO_HOTMAIL"} <= frm("x@hotmail.com")
    assert "T_FORGED_HOTMAIL" in frm("x@hotmail.com", rcvd="Received: from hotmail.com ([198.51.100.9]) by"
                                                            " mx.example.com with SMTP; 1 Oct 2024\r\n")
    genuine = ("Received: from hotmail.com (f135.law8.hotmail.com [216.33.241.135]) by mx.example.com (Postfix)"
               " with ESMTP id 1; Tue, 1 Oct 2024 10:00:00 +0200\r\n")
    h = frm("x@hotmail.com", "X-Originating-IP: [198.51.100.7]\r\n", genuine)
    assert not {"T_NO_HOTMAIL", "T_FORGED_HOTMAIL"} & h
    assert "T_FORGED_YAHOO" in frm("x@yahoo.com")
    yahoo = ("Received: from mta122.mail.mud.yahoo.com (mta122.mail.mud.yahoo.com [68.142.202.54]) by mx.example.com"
             " (Postfix) with ESMTP id 49F2E; Tue, 1 Oct 2024 10:00:00 +0200\r\n")
    assert "T_FORGED_YAHOO" not in frm("x@yahoo.com", rcvd=yahoo)
    assert "T_FORGED_GMAIL" in frm("x@gmail.com")
    assert "T_FORGED_GMAIL" not in frm("x@gmail.com", "X-Received: by 2002:a17:906:abcd:b0:1 with SMTP id x1;"
                                                       " Tue, 01 Oct 2024\r\n")
    assert "T_FORGED_JUNO" in frm("x@juno.com")
    assert "T_FORGED_EUDORA" in frm("x@eudoramail.com")
    assert not {"T_FORGED_YAHOO", "T_FORGED_GMAIL", "T_NO_HOTMAIL"} & frm("x@sender.test")


def test_sorted_and_similar_recipients(engine: RuleEngine) -> None:
    to = ", ".join(f"{u}@example.com" for u in ("boa", "bob", "boc", "bod", "boe", "bof", "bog"))
    h = hits(engine, view(f"From: a@sender.test\r\nTo: {to}\r\n"))
    assert {"T_SORTED", "T_SIMILAR"} <= h
    to = ", ".join(f"{u}@{d}.test" for u, d in (("zoe", "one"), ("adam", "two"), ("mia", "three"), ("ken", "four"),
                                                ("liv", "five"), ("bo", "six"), ("al", "seven")))
    assert not {"T_SORTED", "T_SIMILAR"} & hits(engine, view(f"From: a@sender.test\r\nTo: {to}\r\n"))


def test_vertical_words(engine: RuleEngine) -> None:
    h = hits(engine, view(PLAIN, "V i a g r a   c h e a p   h e r e   t o d a y\r\n"))
    assert "T_TVD_HIGH" in h and "T_TVD" not in h


ALT = ("--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n"
       "--b1\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body>{html}</body></html>\r\n"
       "{extra}--b1--\r\n")


def test_mime_structure_evals(engine: RuleEngine) -> None:
    alt = 'multipart/alternative; boundary="b1"'
    h = hits(engine, view(PLAIN, ALT.format(text="", html="x" * 400, extra=""), ctype=alt))
    assert "T_HTML_MOSTLY" in h and "T_MA_NON_TEXT" not in h
    img = "--b1\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n"
    h = hits(engine, view(PLAIN, ALT.format(text="same text", html="same text", extra=img), ctype=alt))
    assert "T_MA_NON_TEXT" in h and "T_HTML_MOSTLY" not in h
    b64 = "Content-Transfer-Encoding: base64\r\n"
    line78 = "QUJD" * 19 + "QU"  # 78 characters, 79 with the newline
    h = hits(engine, view(PLAIN + b64, line78 + "\r\n"))
    assert {"T_B64_79", "T_B64_78_79", "T_B64_TEXT"} <= h
    h = hits(engine, view(PLAIN + b64, line78 + "QUJD\r\n"))
    assert "T_B64_79" in h and "T_B64_78_79" not in h
    h = hits(engine, view(PLAIN + b64, line78[:-1] + "\r\n", ctype="text/plain; charset=iso-8859-1"))
    assert "T_B64_78_79" in h and "T_B64_79" not in h and "T_B64_TEXT" not in h
    assert not {"T_B64_78_79", "T_B64_79"} & hits(engine, view(PLAIN + b64, line78[:-2] + "\r\n"))
    assert "T_BAD_ISO" in hits(engine, view(PLAIN, ctype="text/plain; charset=iso-foo-bar"))
    assert "T_BAD_ISO" not in hits(engine, view(PLAIN, ctype="text/plain; charset=iso-8859-15"))
    qp = "Content-Transfer-Encoding: quoted-printable\r\n"
    assert "T_QP_LONG" in hits(engine, view(PLAIN + qp, "x" * 79 + "\r\n"))
    assert "T_QP_LONG" not in hits(engine, view(PLAIN + qp, "x" * 78 + "\r\n"))
    mixed = ('--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--m\r\nContent-Type: application/pdf; name="a.pdf"'
             "\r\n\r\n%PDF\r\n--m--\r\n")
    # a name= parameter alone is not an attachment for MIMEEval: only Content-Disposition says so
    assert "T_ATTACH" not in hits(engine, view(PLAIN, mixed, ctype='multipart/mixed; boundary="m"'))
    assert "T_ATTACH" in hits(engine, view(PLAIN, mixed.replace('name="a.pdf"', 'name="a.pdf"\r\n'
                                                                 "Content-Disposition: attachment"),
                                           ctype='multipart/mixed; boundary="m"'))


def test_outlook_express_message_id_must_encode_the_date(engine: RuleEngine) -> None:
    from gateway_milter.antispam.saeval import parse_rfc822_date

    when = parse_rfc822_date("Tue, 1 Oct 2024 10:00:00 +0200")
    assert when == 1727769600
    assert parse_rfc822_date("Mon Aug  5 12:00:00 2002") == 1028505600  # asctime: the time is consumed
    assert parse_rfc822_date("31 Feb 03 25:61:61 GMT") == 1046563199  # clamped, as SpamAssassin does
    # a leap day of a year past 2037 lands on 1 March 2037 (the year clamped after the day check)
    assert parse_rfc822_date("29 Feb 2040 00:00:00 +0000") == 2119478400
    token = int(when * 0.0023283064365387 + 27111902.8329849)
    good = f"From: a@sender.test\r\nTo: bob@example.com\r\nMessage-ID: <0001{token:08x}$0000abcd$0000abcd@pc>\r\n"
    assert "T_OUTLOOK_ID" not in hits(engine, view(good))
    bad = good.replace(f"{token:08x}", f"{token - 5000:08x}")
    assert "T_OUTLOOK_ID" in hits(engine, view(bad))
    assert "T_FARAWAY" not in hits(engine, view(PLAIN, "\xe9\xe8\xe0" * 20, ctype="text/plain; charset=koi8-r"))


RELAYEVAL = {"T_ALL_TRUSTED", "T_NO_RELAYS", "T_UNPARSEABLE", "T_NUMERIC_HELO", "T_HELO_IP_MISMATCH", "T_DOTCOM_HELO",
             "T_FORGED_TRAIL"}


def test_relayeval_functions_read_the_trust_path(engine: RuleEngine) -> None:
    def relay_hits(rcvd: str) -> set[str]:
        return hits(engine, view(PLAIN, rcvd=rcvd)) & RELAYEVAL

    assert relay_hits(RCVD) == set()
    assert relay_hits("") == {"T_NO_RELAYS"}
    local = ("Received: from laptop (unknown [192.168.1.10]) by smtp.sender.test (Postfix) with ESMTPSA id 1;"
             " Tue,  1 Oct 2024 10:00:00 +0200\r\n")
    assert relay_hits(local) == {"T_ALL_TRUSTED"}
    assert relay_hits(local + "Received: from weird stuff nobody writes\r\n") == {"T_UNPARSEABLE"}
    numeric = ("Received: from 203.0.113.9 (unknown [198.51.100.7]) by mx.example.com (Postfix) with SMTP id 2;"
               " Tue,  1 Oct 2024 10:00:00 +0200\r\n")
    assert relay_hits(numeric) == {"T_NUMERIC_HELO", "T_HELO_IP_MISMATCH"}
    same24 = numeric.replace("203.0.113.9", "198.51.100.99")
    assert relay_hits(same24) == {"T_NUMERIC_HELO"}
    dotcom = ("Received: from mx02.hotmail.com (unknown [198.51.100.7]) by mx.example.com (Postfix) with SMTP id 3;"
              " Tue,  1 Oct 2024 10:00:00 +0200\r\n")
    assert relay_hits(dotcom) == {"T_DOTCOM_HELO"}
    # three hand-overs whose "by" is not the previous relay's rDNS domain: two mismatches
    trail = "".join(f"Received: from h{i}.net{i}.test (h{i}.net{i}.test [198.51.100.{i}]) by mx{i}.other{i}.test"
                    f" (Postfix) with ESMTP id {i}; Tue,  1 Oct 2024 10:00:0{i} +0200\r\n" for i in range(1, 4))
    assert relay_hits(trail) == {"T_FORGED_TRAIL"}
    chain = ("Received: from h1.net1.test (h1.net1.test [198.51.100.1]) by mx.example.com (Postfix) with ESMTP id 1;"
             " Tue,  1 Oct 2024 10:00:01 +0200\r\n"
             "Received: from h2.net2.test (h2.net2.test [198.51.100.2]) by out.net1.test (Postfix) with ESMTP id 2;"
             " Tue,  1 Oct 2024 10:00:00 +0200\r\n"
             "Received: from h3.net3.test (h3.net3.test [198.51.100.3]) by out.net2.test (Postfix) with ESMTP id 3;"
             " Tue,  1 Oct 2024 09:59:59 +0200\r\n")
    assert relay_hits(chain) == set()


def test_from_and_envelope_sender_domains(engine: RuleEngine) -> None:
    assert "T_FROM_DIFF_DOMAINS" not in hits(engine, view(PLAIN, mail_from="bounce@lists.sender.test"))
    assert "T_FROM_DIFF_DOMAINS" not in hits(engine, view(PLAIN, mail_from="BOUNCE@Mail.SENDER.test"))
    assert "T_FROM_DIFF_DOMAINS" in hits(engine, view(PLAIN, mail_from="x@other.example"))
    assert "T_FROM_DIFF_DOMAINS" not in hits(engine, view(PLAIN, mail_from=""))  # a bounce: nothing to compare
    # SpamAssassin compares the last two labels only: co.uk domains all look alike
    frm = PLAIN.replace("alice@sender.test", "alice@shop.co.uk")
    assert "T_FROM_DIFF_DOMAINS" not in hits(engine, view(frm, mail_from="x@bank.co.uk"))


def test_the_raw_display_name(engine: RuleEngine) -> None:
    raw8 = PLAIN.replace("From: Alice <", "From: \"Al\u00efce M\u00fcller\" <")
    assert {"T_NAME_8BIT_RAW", "T_NAME_8BIT"} <= hits(engine, view(raw8))
    mime = PLAIN.replace("From: Alice <", "From: =?iso-8859-1?q?Al=EFce?= <")
    h = hits(engine, view(mime))
    assert "T_NAME_8BIT" in h and "T_NAME_8BIT_RAW" not in h  # encoded as it should be
    assert not {"T_NAME_8BIT_RAW", "T_NAME_8BIT"} & hits(engine, view(PLAIN))


def test_freemail_reply_addresses(engine: RuleEngine) -> None:
    fm = {"T_FM_REPLYTO", "T_FM_REPLY"}
    frm = PLAIN.replace("alice@sender.test", "alice@freemail.example.com")
    # From and Reply-To are different freemails: both
    h = hits(engine, view(frm + "Reply-To: <bob77@eu.webmail.example.net>\r\n", mail_from="alice@freemail.example.com"))
    assert fm <= h
    # the same freemail in both, or a Reply-To that is not freemail: neither (no body address)
    assert not fm & hits(engine, view(frm + "Reply-To: alice@freemail.example.com\r\n", mail_from="alice@freemail.example.com"))
    assert not fm & hits(engine, view(frm + "Reply-To: desk@sender.test\r\n", mail_from="alice@freemail.example.com"))
    # no Reply-To: 'reply' compares From with the freemails of the body
    body = "Write to me at carl.x@freemail.example.com for the money.\r\n"
    h = hits(engine, view(frm, body, mail_from="alice@freemail.example.com"))
    assert "T_FM_REPLY" in h and "T_FM_REPLYTO" not in h
    # a freemail Reply-To and another freemail in the body: 'replyto'
    h = hits(engine, view(PLAIN + "Reply-To: alice@freemail.example.com\r\n", body))
    assert "T_FM_REPLYTO" in h
    # addresses quoted before "wrote:", inside <...> or inside a URL are not the body's
    quoted = ("On Monday carl.x@freemail.example.com wrote: hi\r\nmail <dan@freemail.example.com> or "
              "http://x.example/?u=eve@freemail.example.com\r\n")
    assert not fm & hits(engine, view(frm, quoted, mail_from="alice@freemail.example.com"))
    # the address ends at its last top-level domain label (FreeMail's regex backtracks so)
    assert "T_FM_REPLY" in hits(engine, view(frm, "see carl@freemail.example.com.zz9x\r\n",
                                             mail_from="alice@freemail.example.com"))
    assert "T_FM_REPLY" not in hits(engine, view(frm, "see carl@freemail.example.zz9x\r\n",
                                                 mail_from="alice@freemail.example.com"))
    # too many addresses in the body (5): FreeMail gives up on it
    many = " ".join(f"u{i}@site{i}.example.org" for i in range(4)) + " carl.x@freemail.example.com\r\n"
    assert "T_FM_REPLY" not in hits(engine, view(frm, many, mail_from="alice@freemail.example.com"))
    # mailing-list-like envelope senders are skipped
    assert not fm & hits(engine, view(frm + "Reply-To: <bob77@eu.webmail.example.net>\r\n",
                                      mail_from="list-bounces@lists.example"))


def test_blank_lines_stock_tips_and_ratware_senders(engine: RuleEngine) -> None:
    # 9 blank lines of 11: 81.8 %
    assert "T_BLANK_LINES" in hits(engine, view(PLAIN, "top\r\n" + "\r\n" * 9 + "end\r\n"))
    assert "T_BLANK_LINES" not in hits(engine, view(PLAIN, "top\r\n" + "\r\n" * 3 + "end\r\n"))  # 60 %
    assert "T_BLANK_LINES" not in hits(engine, view(PLAIN, "top\r\n" + "\r\n" * 40 + "end\r\n"))  # 95 %
    tip = "Company: Acme Mining\r\nSymbol: ACMM\r\nTarget Price: $4\r\nRating: strong buy\r\n"
    assert "T_STOCK" in hits(engine, view(PLAIN, tip))
    assert "T_STOCK" not in hits(engine, view(PLAIN, "Company: Acme Mining\r\nDear: friend\r\n"))
    to = PLAIN.replace("bob@example.com", "bob@shop.example.com")
    assert "T_RATWARE_EFROM" in hits(engine, view(to, mail_from="example.com.bob@spam.example.net"))
    assert "T_RATWARE_EFROM" not in hits(engine, view(to, mail_from="news@example.com"))
    assert "T_RATWARE_EFROM" not in hits(engine, view(to, mail_from="SRS0=x=example.com.bob@fwd.example.net"))


@pytest.mark.parametrize("parts,hit", [(999, False), (1000, True)])
def test_the_mime_part_limit(engine: RuleEngine, parts: int, hit: bool) -> None:
    body = "".join(f"--m\r\nContent-Type: text/plain\r\n\r\n{i}\r\n" for i in range(parts)) + "--m--\r\n"
    v = view(PLAIN, body, ctype='multipart/mixed; boundary="m"')
    assert ("T_MIMEPART_LIMIT" in hits(engine, v)) is hit


def test_multipart_alternative_difference(engine: RuleEngine) -> None:
    alt = 'multipart/alternative; boundary="b1"'
    diff = {"T_MPART_ALT_DIFF", "T_MPART_ALT_DIFF_COUNT"}
    # the same words in both parts (HTML markup, case of the tags and a bullet aside)
    same = ALT.format(text="Cheap offer today, reply now", extra="",
                      html="<p>Cheap <b>offer</b> today,</p> * <i>reply</i> now")
    assert not diff & hits(engine, view(PLAIN, same, ctype=alt))
    # the HTML says something else entirely: 100 % of its words are missing from the text part
    other = ALT.format(text="Your mail client cannot show this message", extra="",
                       html="Buy cheap pills online today")
    h = hits(engine, view(PLAIN, other, ctype=alt))
    assert "T_MPART_ALT_DIFF" in h and "T_MPART_ALT_DIFF_COUNT" not in h
    # more than 3 text words per HTML word (and more than one HTML word)
    padded = ALT.format(text="one two three four five six seven eight nine ten eleven twelve thirteen",
                        html="one two", extra="")
    h = hits(engine, view(PLAIN, padded, ctype=alt))
    assert "T_MPART_ALT_DIFF_COUNT" in h and "T_MPART_ALT_DIFF" not in h
    # an HTML part with only an image counts as one word that the text part cannot have
    image = ALT.format(text="see the picture", html='<img src="cid:1">', extra="")
    assert "T_MPART_ALT_DIFF" in hits(engine, view(PLAIN, image, ctype=alt))
    # not multipart/alternative, or an Exchange meeting request: no difference is computed
    assert not diff & hits(engine, view(PLAIN, other, ctype='multipart/mixed; boundary="b1"'))
    meeting = ("--b1\r\nContent-Type: text/html\r\n\r\n<p>Buy cheap pills</p>\r\n"
               "--b1\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n--b1--\r\n")
    assert not diff & hits(engine, view(PLAIN, meeting, ctype=alt))
    # nested in multipart/mixed, next to an attachment
    nested = ('--m\r\nContent-Type: multipart/alternative; boundary="b1"\r\n\r\n' + other
              + '--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
              "\r\n\r\n%PDF\r\n--m--\r\n")
    assert "T_MPART_ALT_DIFF" in hits(engine, view(PLAIN, nested, ctype='multipart/mixed; boundary="m"'))


def test_debian_rules_on_these_evals_are_supported(tmp_path: Path) -> None:
    from gateway_milter.layers.rules import RulesSettings, engine_from_settings

    eng = engine_from_settings(RulesSettings())
    if not eng.rules:
        pytest.skip("Debian's spamassassin rules are not installed")
    fns = ("check_for_missing_to_header", "check_for_to_in_subject", "gated_through_received_hdr_remover",
           "tvd_vertical_words", "check_ma_non_text", "check_base64_length", "sorted_recipients",
           "multipart_alternative_difference", "check_freemail_replyto", "check_equal_from_domains",
           "check_blank_line_ratio", "check_stock_info", "check_ratware_envelope_from")
    assert not [n for n, why in eng.unsupported.items() if any(f in why for f in fns)]


def test_a_header_value_is_parsed_for_addresses_once_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.antispam import saview
    from gateway_milter.antispam.saaddr import parse_addresses

    parsed: list[str] = []

    def counting(value: str) -> list[tuple[str | None, str | None]]:
        parsed.append(value)
        return parse_addresses(value)

    monkeypatch.setattr(saview, "parse_addresses", counting)
    raw = (b"From: \"Ann Example\" <ann@example.com>\r\nTo: bob@example.org, Carl <carl@example.net>\r\n"
           b"Reply-To: ann@example.com\r\nSubject: hi\r\n\r\nhello\r\n")
    m = message_view(make_ctx(raw))
    to = "bob@example.org, Carl <carl@example.net>"
    first = m.addresses([to, "ann@example.com"])
    assert first == [("", "bob@example.org"), ("Carl ", "carl@example.net"), ("", "ann@example.com")]
    first.append(("x", "y"))  # the caller's list is its own
    assert m.addresses([to]) == [("", "bob@example.org"), ("Carl ", "carl@example.net")]
    # (the raw values, as _get parses them: with the white space after the colon)
    assert m.header("From:addr") == "ann@example.com" and m.header("From:name") == "Ann Example"
    assert m.header("From:name:raw") == "Ann Example "  # the phrase as SpamAssassin keeps it (unquoted)
    assert m.header("Reply-To:addr") == "ann@example.com"
    assert sorted(parsed) == sorted([to, "ann@example.com", ' "Ann Example" <ann@example.com>', " ann@example.com"])


def _similarity_pair_by_pair(address: list[str]) -> float:
    # HeaderEval::_check_recipients as SpamAssassin writes it: every pair of addresses
    from gateway_milter.antispam.saeval import TOCC_SIMILAR_LENGTH as L

    user = [a[:L] for a in address]
    fqhn = [a.split("@", 1)[1] for a in address if "@" in a]
    fqhn += [""] * (len(address) - len(fqhn))
    host = [h[:L] for h in fqhn]
    hits = combinations = 0
    for i in range(len(address)):
        for j in range(i + 1, len(address)):
            hits += user[i] == user[j]
            hits += host[i] == host[j] and fqhn[i] != fqhn[j]
            combinations += 1
    return hits / combinations


def test_recipient_similarity_counted_by_groups_equals_the_pairwise_count() -> None:
    import random

    from gateway_milter.antispam.saeval import _recipients

    rnd = random.Random(11)
    users = ["bob", "bobby", "bo", "alice", "al", "carl", "carla", "info", "x"]
    hosts = ["example.com", "example.org", "exam.net", "mail.example.com", "mail.example.org", "b.c", "other.test"]
    for n in (5, 6, 9, 17, 40, 120):
        rcpts = [f"{rnd.choice(users)}{rnd.randint(0, 3) if rnd.random() < .5 else ''}@{rnd.choice(hosts)}"
                 for _ in range(n)]
        raw = ("From: a@sender.test\r\nTo: " + ", ".join(rcpts) + "\r\nSubject: s\r\n\r\nbody\r\n").encode()
        m = message_view(make_ctx(raw))
        kept: list[str] = []
        for a in rcpts:  # adjacent duplicates dropped, as the function does
            if not kept or a.lower() != kept[-1].lower():
                kept.append(a)
        _sorted, similar = _recipients(m)
        assert similar == pytest.approx(_similarity_pair_by_pair(kept)), n


def test_freemail_domains_with_wildcards_as_the_freemail_plugin_reads_them() -> None:
    # "?" one character, "*" any characters but a dot (Debian's list: yahoo.*, hotmail.co*.*,
    # *.att.ne.jp, mail2*.com); role and bounce addresses are never freemail
    from gateway_milter.antispam.saeval import _is_freemail

    ex = {"freemail_domains": {"freemail.example.com", "yahoo.*", "yahoo.co*.*", "*.att.ne.jp", "mail2*.com",
                               "hotmail.co.??"}}
    for addr in ("joe@freemail.example.com", "joe@yahoo.com", "Joe@Yahoo.FR", "joe@yahoo.co.uk", "joe@a.att.ne.jp",
                 "joe@mail2world.com", "joe@hotmail.co.uk"):
        assert _is_freemail(addr, ex), addr
    for addr in ("joe@yahoo.example.org", "joe@mail.yahoo.example.org", "joe@a.b.att.ne.jp", "joe@hotmail.co.ukk",
                 "joe@sub.freemail.example.com", "info@yahoo.com", "undisclosed.x@yahoo.com", "a=b=c@yahoo.com", ""):
        assert not _is_freemail(addr, ex), addr


def test_freemail_from_reads_every_sender_address(engine: RuleEngine) -> None:
    # FreeMail's check_freemail_from: From, Envelope-Sender, Resent-Sender, X-Envelope-From and
    # the envelope sender (all_from_addrs), or the first Resent-From alone
    assert "T_FM_FROM" in hits(engine, view(PLAIN.replace("alice@sender.test", "alice@freemail.example.com")))
    assert "T_FM_FROM" not in hits(engine, view(PLAIN))
    assert "T_FM_FROM" in hits(engine, view(PLAIN, mail_from="carl@eu.webmail.example.net"))
    assert "T_FM_FROM" in hits(engine, view(PLAIN + "X-Envelope-From: <carl@freemail.example.com>\r\n"))
    resent = PLAIN + "Resent-From: desk@sender.test\r\n"
    assert "T_FM_FROM" not in hits(engine, view(resent, mail_from="carl@freemail.example.com"))


def _rcvd(when: str, host: str = "mx.example.com") -> str:
    return (f"Received: from relay.sender.test (relay.sender.test [198.51.100.21])\r\n\tby {host} (Postfix)"
            f" with ESMTP id 4XyZ2; {when}\r\n")


def test_shifted_date_takes_the_received_time_closest_to_the_date(engine: RuleEngine) -> None:
    # HeaderEval::_check_date_diff: Date (10:00 +0200) minus each Received time, the smallest in size
    shift = {"T_PAST_3_6", "T_FUTURE_3_6"}
    assert shift & hits(engine, view(PLAIN, rcvd=_rcvd("Tue, 1 Oct 2024 14:30:00 +0200"))) == {"T_PAST_3_6"}
    assert shift & hits(engine, view(PLAIN, rcvd=_rcvd("Tue, 1 Oct 2024 04:30:00 +0200"))) == {"T_FUTURE_3_6"}
    # the newest is 10 hours after the Date, an older one 4: 4 counts
    two = _rcvd("Tue, 1 Oct 2024 20:00:00 +0200") + _rcvd("Tue, 1 Oct 2024 14:00:00 +0200", "relay.example.com")
    assert shift & hits(engine, view(PLAIN, rcvd=two)) == {"T_PAST_3_6"}
    # the oldest equal to the Date is left out when there are others
    same = _rcvd("Tue, 1 Oct 2024 14:00:00 +0200") + _rcvd("Tue, 1 Oct 2024 08:00:00 +0000", "relay.example.com")
    assert shift & hits(engine, view(PLAIN, rcvd=same)) == {"T_PAST_3_6"}
    # a local hand-over first is skipped; its time would say +5 hours
    local = ("Received: from localhost (localhost [127.0.0.1]) by mx.example.com (Postfix) with ESMTP id 1;"
             " Tue, 1 Oct 2024 05:00:00 +0200\r\n")
    assert shift & hits(engine, view(PLAIN, rcvd=local + _rcvd("Tue, 1 Oct 2024 14:00:00 +0200"))) == {"T_PAST_3_6"}
    # Resent-Date wins over Date; no Received time: a difference of 0
    resent = PLAIN + "Resent-Date: Tue, 1 Oct 2024 18:00:00 +0200\r\n"
    assert shift & hits(engine, view(resent, rcvd=_rcvd("Tue, 1 Oct 2024 14:00:00 +0200"))) == {"T_FUTURE_3_6"}
    assert not shift & hits(engine, view(PLAIN, rcvd="Received: by mx.example.com (Postfix)\r\n"))


def _guessed(raw: str) -> str | None:
    ctx = make_ctx(raw.encode(), mail_from="ignored@elsewhere.test")
    ctx.envelope_guessed = True  # a stored message without its envelope (manage.py scan, the evaluation)
    return message_view(ctx).envelope()


def test_envelope_sender_of_a_stored_message_is_guessed_as_spamassassin_does() -> None:
    body = "Date: Tue, 1 Oct 2024 10:00:00 +0200\r\n\r\nhi\r\n"
    rcvd_env = ("Received: from relay.sender.test (relay.sender.test [198.51.100.21]) (envelope-from <list-bounce@"
                "lists.sender.test>)\r\n\tby mx.example.com (Postfix) with ESMTP id 4XyZ2; Tue, 1 Oct 2024 10:00:05 +0200\r\n")
    rcvd = ("Received: from relay.sender.test (relay.sender.test [198.51.100.21])\r\n\tby mx.example.com (Postfix)"
            " with ESMTP id 4XyZ2; Tue, 1 Oct 2024 10:00:05 +0200\r\n")
    # the last untrusted relay's envelope-from comes first
    assert _guessed("Return-Path: <a@b.test>\r\n" + rcvd_env + PLAIN + body) == "list-bounce@lists.sender.test"
    # a Return-Path above the Received headers (the final delivery's) is the envelope
    assert _guessed("Return-Path: <owner@lists.sender.test>\r\n" + rcvd + PLAIN + body) == "owner@lists.sender.test"
    # one below a Received header may be an older hop's: not trusted, nothing else known
    assert _guessed(rcvd + "Return-Path: <owner@lists.sender.test>\r\n" + PLAIN + body) is None
    # X-Envelope-From before the Return-Path
    assert _guessed("X-Envelope-From: <x@y.test>\r\nReturn-Path: <a@b.test>\r\n" + rcvd + PLAIN + body) == "x@y.test"
    # with the SMTP envelope known, that one, whatever the headers say
    ctx = make_ctx(("Return-Path: <a@b.test>\r\n" + rcvd + PLAIN + body).encode(), mail_from="real@sender.test")
    assert message_view(ctx).envelope() == "real@sender.test"
    assert message_view(ctx).header("EnvelopeFrom") == "real@sender.test"


def test_check_for_uppercase_counts_as_mimeeval_does(tmp_path: Path) -> None:
    rules = ("body T_UC_50_75 eval:check_for_uppercase('50', '75')\nscore T_UC_50_75 1\n"
             "body T_UC_25_50 eval:check_for_uppercase('25', '50')\nscore T_UC_25_50 1\n")
    eng = engine_for((str(write_rules(tmp_path, rules)),), 2, include_default=False)

    def hits(body: str, ctype: str = "text/plain; charset=us-ascii") -> set[str]:
        return {h.name for h in eng.run(view(PLAIN, body, ctype=ctype)).hits}

    line = "BUY NOW cheap offer "  # 10 upper, 10 lower: 50 %, not over 50
    assert hits((line * 3 + "\r\n") * 4) == {"T_UC_25_50"}
    # digits count as lower case: "2002 DATE" is 4 upper, 4 "lower"
    assert hits(("SALE ENDS 2002 ab " * 3 + "\r\n") * 4) == {"T_UC_50_75"}
    assert hits(("BUY NOW CHEAP offer " * 3 + "\r\n") * 4) == {"T_UC_50_75"}
    assert hits("BUY NOW CHEAP offer\r\n") == set()  # under 200 bytes of lines with a space
    # lines without a space between two characters, and base64-looking lines, do not count
    # (each paragraph is a line: blank lines between them)
    b64 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWkFCQ0RF " * 2
    assert hits(("BUY NOW CHEAP offer " * 3 + "\r\n") * 4 + "\r\n" + (b64 + "\r\n\r\n") * 5
                + "ABCDEFGHIJKLMNOP\r\n\r\n" * 30) == {"T_UC_50_75"}
    # a charset without case: never
    assert hits(("BUY NOW CHEAP offer " * 3 + "\r\n") * 4, ctype="text/plain; charset=big5") == set()


def test_a_mailto_link_the_text_also_gives_is_judged_in_the_text(engine: RuleEngine) -> None:
    # FreeMail's _parse_body takes mailto: links only when the text does not give the same URI
    # (types "a" without "parsed"); in the text, an address followed by "Http:" is dropped
    html = "text/html; charset=us-ascii"
    rt = PLAIN + "Reply-To: alice@freemail.example.com\r\n"
    shown = ('<p>Manager <a href="mailto:carl@freemail.example.com">carl@freemail.example.com</a><br>'
             '<a href="http://x.example/">Http://x.example</a></p>\r\n')
    assert "T_FM_REPLYTO" not in hits(engine, view(rt, shown, ctype=html))
    hidden = '<p>Manager <a href="mailto:carl@freemail.example.com">write to us</a></p>\r\n'
    assert "T_FM_REPLYTO" in hits(engine, view(rt, hidden, ctype=html))


def test_subject_is_all_caps_as_headereval_judges_it(tmp_path: Path) -> None:
    eng = engine_for((str(write_rules(tmp_path, "header T_CAPS eval:subject_is_all_caps()\nscore T_CAPS 1\n")),),
                     2, include_default=False)

    def caps(subject: str) -> bool:
        head = PLAIN.replace("Subject: lunch", f"Subject: {subject}")
        return "T_CAPS" in {h.name for h in eng.run(view(head)).hits}

    assert caps("FREE MONEY NOW 100%") and caps("WG: FREE MONEY NOW")
    assert not caps("Free money now") and not caps("FREEMONEYNOW!") and not caps("BUY NOW")  # one word; < 10
    assert not caps("VL: FREECASHNOW")  # the prefix taken off, one word is left
    assert caps("[SA] =?utf-8?Q?GRATIS_GELD_JETZT?=")
    # encoded in a charset without case: never (Big5 here)
    assert not caps("[SA] =?big5?Q?=BE=A5=A4=F4=A7X?= OFFER")


def test_the_alternative_difference_counts_words_in_any_script(engine: RuleEngine) -> None:
    # the rendered parts are characters to SpamAssassin: Perl's Unicode \w and \s, so a Chinese
    # HTML part has words, and an ideographic space splits them
    html = "<html><body><p>公版廣告信範例</p><p>線上影片\u3000立即教你</p></body></html>"
    raw = (PLAIN + 'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="a1"\r\n\r\n'
           '--a1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
           + html + "\r\n--a1--\r\n").encode()
    v = message_view(make_ctx(RCVD.encode() + raw))
    assert "T_MPART_ALT_DIFF" in hits(engine, v)
    from gateway_milter.antispam.saeval import _madiff

    assert _madiff(v)[1:] == (3, 0)  # three HTML words, no text words
