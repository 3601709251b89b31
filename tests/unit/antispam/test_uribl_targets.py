"""What the URIBL layer looks up (audit of the URIBL layer, D1-D9):

- D1: targets are ranked as SpamAssassin's URIDNSBL ranks them (anchors with text, forms, images,
  other links, text, anchors without text): 20 junk links or tracking pixels before the real
  link no longer push it out of ``max_lookups``;
- D5: links come from the rendered text and the HTML links, not the HTML source (DOCTYPE,
  xmlns, @import, script, comments, attribute values);
- D6: names without a real top-level domain and bare public suffixes are not looked up;
- D2: bare domains in text and schemeless hrefs are found, email addresses' domains are not;
- D3: links in the Subject; D4: redirector targets; D7: GATEWAY_PSL_FILE;
- D8: 127.0.0.1 from a URI list is a refusal (unknown), not "not listed";
- D9: a mask that no answer of ``codes`` can meet is refused when saved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam import dnslists
from gateway_milter.antispam.dnslists import parse_zones, refusal
from gateway_milter.antispam.htmltext import render_html
from gateway_milter.antispam.saview import message_view
from gateway_milter.auth import psl
from gateway_milter.antispam import urls
from gateway_milter.layers.base import SettingsError
from gateway_milter.layers.uribl import lookup_targets, message_links
from gateway_milter.net.resolver import StaticBackend
from tests.unit.antispam.helpers import make_ctx, msg, policy

ZONE = {"uribl": {"zones": [{"zone": "uri.test", "weight": 4}]}}
HTML = "text/html; charset=utf-8"


def targets(raw: bytes, limit: int = 200) -> list[str]:
    return lookup_targets(message_links(message_view(make_ctx(raw))), set(), limit)


def html(body: str, subject: str = "x") -> bytes:
    return msg(subject, f"<html><body>{body}</body></html>", ctype=HTML)


# -- D1: ranking ----------------------------------------------------------------------------------
def test_html_links_know_their_kind() -> None:
    f = render_html('<a href="http://e.test/"></a><img src="http://i.test/p.gif"><a href="http://t.test/">go</a>'
                    '<a href="http://m.test/"><img src="x.gif"></a><form action="http://f.test/"></form>'
                    '<link href="http://l.test/s.css">')
    assert list(zip(f.uris, f.uri_kinds, strict=True)) == [
        ("http://e.test/", "a_empty"), ("http://i.test/p.gif", "img"), ("http://t.test/", "a"),
        ("http://m.test/", "a"), ("x.gif", "img"), ("http://f.test/", "form"), ("http://l.test/s.css", "other")]


def test_tracking_pixels_before_the_real_link_do_not_hide_it(dns: StaticBackend) -> None:
    pixels = "".join(f'<img src="http://cdn{i}.com/p.gif" width=1 height=1>' for i in range(25))
    raw = html(pixels + '<a href="http://evilpharma.com/buy">Buy now</a>')
    assert targets(raw, 20)[0] == "evilpharma.com"
    dns.add("evilpharma.com.uri.test", "A", ["127.0.0.2"])
    res = make_ctx(raw, policy(ZONE)).layer("uribl")
    assert res.has("URIBL_URI_TEST"), res.fact("targets")
    assert len(res.fact("targets")) == 20


def test_junk_links_before_the_real_one_do_not_hide_it() -> None:
    junk = "".join(f'<a href="http://x{i}.zz{i}.com/"></a>' for i in range(30))  # anchors without text
    got = targets(html(junk + '<a href="http://evilpharma.com/buy">Buy now</a>'), 20)
    assert got[0] == "evilpharma.com" and len(got) == 20


def test_ranks_follow_spamassassin() -> None:
    body = ('see http://text.test/ <a href="http://empty.test/"></a> <img src="http://img.test/i.gif">'
            '<script src="http://other.test/s.js"></script> <form action="http://form.test/"></form>'
            '<a href="http://anchor.test/">click</a>')
    assert targets(html(body)) == ["anchor.test", "form.test", "img.test", "other.test", "text.test", "empty.test"]


def test_a_target_takes_the_best_rank_of_its_links() -> None:
    body = 'http://both.test/ <img src="http://img.test/i.gif"> <a href="http://both.test/x">both</a>'
    assert targets(html(body)) == ["both.test", "img.test"]


def test_plain_url_lists_keep_their_order() -> None:
    assert lookup_targets(["http://b.test/", "http://a.test/", "http://b.test/x"], set(), 20) == ["b.test", "a.test"]


# -- D5: not the HTML source ----------------------------------------------------------------------
def test_urls_of_the_html_source_are_not_looked_up() -> None:
    body = ('<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
            '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">'
            '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:m="http://schemas.microsoft.com/office/2004/12/omml">'
            '<head><style>@import url(http://cssimport.com/a.css);</style>'
            '<script>var u="http://inscript.com/";</script></head><body><!-- http://incomment.com/ -->'
            '<div title="http://inattr.com/">Hello</div><a href="http://real.com/">real</a></body></html>')
    assert targets(msg("x", body, ctype=HTML)) == ["real.com"]


def test_links_in_the_rendered_html_text_are_looked_up() -> None:
    assert targets(html("<p>visit http://shown.test/ today</p>")) == ["shown.test"]


# -- D6: valid top-level domains ------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://localhost/", "http://intranet/", "http://evil29/", "http://com/",
                                 "http://co.uk/", "http://a.b/", "http://files.corp.internal/"])
def test_names_without_a_real_tld_are_not_looked_up(url: str) -> None:
    assert lookup_targets([url], set(), 20) == []
    assert targets(msg("x", f"see {url} now")) == []


def test_real_and_test_tlds_are_looked_up() -> None:
    assert lookup_targets(["http://www.evil.co.uk/", "http://evil.test/", "http://x.example/", "http://a.xn--p1ai/"],
                          set(), 20) == ["evil.co.uk", "evil.test", "x.example", "a.xn--p1ai"]


# -- D2: bare domains, schemeless hrefs -----------------------------------------------------------
def test_bare_domains_in_text_are_looked_up() -> None:
    got = targets(msg("x", "cheap pills at evilpharma.com/buy or sub.evil2.co.uk - see file.txt version 1.2"))
    assert got == ["evilpharma.com", "evil2.co.uk"]


def test_a_schemeless_href_is_read_as_http() -> None:
    assert targets(html('<a href="evilpharma.com/buy">buy</a> <a href="/local/path">x</a>')) == ["evilpharma.com"]


@pytest.mark.parametrize("body", ["mail bob@www.company-x.com please", "write to sales@evilmail.com",
                                  "mailto:x@www.evilmail.com"])
def test_email_domains_are_not_looked_up(body: str) -> None:
    assert targets(msg("x", body)) == []
    assert targets(html('<a href="mailto:x@evilmail.test">m</a>')) == []


def test_userinfo_in_a_text_link_is_no_address() -> None:
    assert targets(msg("x", "see http://user:pass@evil.test@good.test/ now")) == ["good.test"]


# -- D3: subject ----------------------------------------------------------------------------------
def test_links_in_the_subject_are_looked_up() -> None:
    assert targets(msg("buy at http://onlyinsubject.com/ now", "hello there, nothing else")) == ["onlyinsubject.com"]
    assert targets(msg("buy at evilsubject.com now", "hello")) == ["evilsubject.com"]


# -- D4: redirectors ------------------------------------------------------------------------------
@pytest.mark.parametrize(("link", "inner"), [
    ("https://www.google.com/url?q=http://evil18.test/", "evil18.test"),
    ("https://www.google.com/url?q=http%3A%2F%2Fevil18b.test%2F&sa=D", "evil18b.test"),
    ("https://www.google.com/url?q=http://evil18c.test&sa=D", "evil18c.test"),
    ("http://t.example.net/r?u=http://evil.com/", "evil.com"),
    ("https://nam02.safelinks.protection.outlook.com/?url=http%3A%2F%2Fevilsafe.com%2F&amp;data=1", "evilsafe.com"),
])
def test_redirector_targets_are_looked_up(link: str, inner: str) -> None:
    assert inner in targets(msg("x", f"go {link} now"))
    assert inner in targets(html(f'<a href="{link}">go</a>'))


# -- D7: the PSL file -----------------------------------------------------------------------------
def test_the_psl_file_setting_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "psl.dat"
    f.write_text("// test\ncom\ndev\npages.dev\n", encoding="utf-8")
    monkeypatch.setenv("GATEWAY_PSL_FILE", str(f))
    for cache in (psl._rules, psl._tlds, urls._org_cached):
        cache.cache_clear()
    try:
        assert urls.org_domain("phish.pages.dev") == psl.org_domain("phish.pages.dev") == "phish.pages.dev"
        assert lookup_targets(["https://phish.pages.dev/login"], set(), 20) == ["phish.pages.dev"]
    finally:
        monkeypatch.delenv("GATEWAY_PSL_FILE")
        for cache in (psl._rules, psl._tlds, urls._org_cached):
            cache.cache_clear()


# -- D8: 127.0.0.1 from a URI list ----------------------------------------------------------------
def test_127_0_0_1_is_a_refusal_of_a_uri_list(dns: StaticBackend) -> None:
    dns.add("evil.test.uri.test", "A", ["127.0.0.1"])
    ctx = make_ctx(msg("x", "see http://evil.test/"), policy(ZONE))
    res = ctx.layer("uribl")
    assert not res.symbols and res.fact("unknown") == ["evil.test.uri.test (the list refused the query: 127.0.0.1)"]
    assert any(t.source == "uribl" and t.event == "warning" for t in ctx.trace)


def test_127_0_0_1_named_by_codes_is_an_answer() -> None:
    (z,) = parse_zones(({"zone": "uri.test", "codes": ["127.0.0.1-127.0.0.3"]},), "zones", "URIBL_")
    assert refusal(["127.0.0.1"], z) is None and z.accepts("127.0.0.1")
    (plain,) = parse_zones(({"zone": "uri.test"},), "zones", "URIBL_")
    assert refusal(["127.0.0.1"], plain) == "127.0.0.1"
    assert refusal(["127.0.0.1"]) is None  # (the dnsbl layer's call: unchanged)
    assert refusal(["127.255.255.254"], plain) == "127.255.255.254" and refusal(["127.0.1.255"]) == "127.0.1.255"


# -- D9: mask and codes ---------------------------------------------------------------------------
@pytest.mark.parametrize(("mask", "codes"), [(0x100, ["127.0.0.2"]), ("0x08", ["127.0.0.2-127.0.0.7"]),
                                             (0x80000000, ["127.0.0.2"])])
def test_a_mask_codes_never_meet_is_refused(mask: object, codes: list[str]) -> None:
    with pytest.raises(SettingsError) as e:
        parse_zones(({"zone": "uri.test", "mask": mask, "codes": codes},), "zones", "URIBL_")
    assert e.value.path == "zones[0].mask"


@pytest.mark.parametrize(("mask", "codes"), [("0x08", ["127.0.0.2-127.0.0.14"]), (2, ["127.0.0.2"]),
                                             (0x7F000000, ["127.0.0.2"]), ("0x08", ["127.0.0.7-127.0.0.8"])])
def test_a_mask_codes_can_meet_is_kept(mask: object, codes: list[str]) -> None:
    assert parse_zones(({"zone": "uri.test", "mask": mask, "codes": codes},), "zones", "URIBL_")[0].mask


def test_has_bit() -> None:
    assert dnslists._has_bit(7, 8, 8) and not dnslists._has_bit(2, 7, 8) and dnslists._has_bit(9, 9, 8)


@pytest.mark.parametrize("weight", [True, False, "x", None])
def test_a_weight_that_is_no_number_is_refused(weight: object) -> None:
    with pytest.raises(SettingsError) as e:
        parse_zones(({"zone": "uri.test", "weight": weight},), "zones", "URIBL_")
    assert e.value.path == "zones[0].weight"
