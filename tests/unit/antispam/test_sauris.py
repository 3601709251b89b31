"""SpamAssassin's URI list for the uri rules (gateway_milter/antispam/sauris.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway_milter.antispam.engine import engine_for
from gateway_milter.antispam.htmltext import render_html
from gateway_milter.antispam.sauris import UriSettings, is_fqdn_valid, is_ip, target_uri, tld_pattern, url_decode
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg, write_rules

TLDS = ("com", "org", "net", "de", "uk", "co", "info", "xn--p1ai")


@pytest.fixture
def us() -> UriSettings:
    google = re.compile(r"^https?:/*(?:\w+\.)?google(?:\.\w{2,3}){1,2}/url\?.*?(?<=[?&])q=(.*?)(?:$|[&#])", re.I)
    return UriSettings(TLDS, [google])


def test_the_tld_trie_matches_whole_labels_only() -> None:
    rx = re.compile(tld_pattern(["co", "com", "de"]), re.I)
    assert [m.group(0) for m in rx.finditer("x.com y.co z.de w.cox v.com.au")] == ["com", "co", "de"]


def test_text_email_addresses_become_mailto(us: UriSettings) -> None:
    got = us.text_uris(["To unsubscribe, write to Unsubscribe@Lists.Example.com today."])
    assert got == ["mailto:Unsubscribe@Lists.Example.com"]
    # no known TLD after the @, no dot, or a cid: are not URIs
    assert us.text_uris(["mail me at joe@host.invalid or Vi@gra or cid:image001.png@01D4986E.E3459640"]) == []


def test_text_links_schemes_and_schemeless_hosts(us: UriSettings) -> None:
    got = us.text_uris(["see www.shop.com/a. and ftp.files.de, then (http://x.org/p) or bargains.info/now"])
    assert got == ["http://www.shop.com/a", "ftp://ftp.files.de", "http://x.org/p", "http://bargains.info/now"]
    # an unknown TLD is not a schemeless host; a comma right after a host ends no URI (Thunderbird)
    assert us.text_uris(["go to bargains.invalid now", "shop.com, now"]) == []


def test_text_uris_need_a_known_domain_in_the_list(us: UriSettings) -> None:
    # http://x.test/ is a link in the text, but its host has no known TLD: SpamAssassin drops it
    assert us.uri_list(["click http://x.test/ and http://y.com/"], []) == ["http://y.com/"]


def test_canonical_variants_sit_beside_the_uri_as_found(us: UriSettings) -> None:
    got = us.canonicalize("http://user@Evil.com:80/a%2Fb?x")
    assert got[0] == "http://user@Evil.com:80/a%2Fb?x"  # as found, first
    assert "http://user@Evil.com:80/a/b?x" in got  # percent-decoded
    assert "http://Evil.com/a/b?x" in got  # no user, no default port
    assert us.canonicalize("http://1113343453/x") == ["http://1113343453/x", "http://66.92.69.221/x"]
    assert "http://127.1.1.1/" in us.canonicalize("http://0x7f.1.1.01/")  # hex and octal octets
    assert "http://www.foobar.com/" in us.canonicalize("http://foobar/")  # as Firefox does
    assert "http://www.shop.com/?id=3" in us.canonicalize("www.shop.com?id=3")


def test_redirector_targets_and_mailto_variants(us: UriSettings) -> None:
    got = us.canonicalize("http://www.google.com/url?q=http://bad.example.net/&x=1")
    assert "http://bad.example.net/" in got  # the redirector pattern's target
    assert "http://bad.net/x" in us.canonicalize("http://a.org/go?to=http://bad.net/x")  # generic
    assert us.canonicalize("mailto:a@b.com?subject=hi") == ["mailto:a@b.com?subject=hi", "mailto:a@b.com"]


def test_url_decode_keeps_reserved_and_control_escapes() -> None:
    assert url_decode("http://%77%77%77.x.com/%20%0a%41") == "http://www.x.com/%20%0aA"
    assert url_decode('http://x.com/a b"') == "http://x.com/a%20b%22"


def test_html_uris_as_found_resolved_against_base() -> None:
    f = render_html("<html><head><base href='http://base.com/dir/index.html'></head><body background='bg.gif'>"
                    "<a href=' page.html '>a</a><a href='mailto:x@y.com'>m</a><img src='//cdn.com/i.png'>"
                    "<form action='/post'></form><div href='http://no.com/'>not a link tag</div></body></html>")
    assert f.uris == ["http://base.com/dir/index.html", "http://base.com/dir/bg.gif", "http://base.com/dir/page.html",
                      "mailto:x@y.com", "http://cdn.com/i.png", "http://base.com/post"]
    assert target_uri("", "foo/../bar.html") == "/bar.html"  # (HTML::_remove_dot_segments)
    assert target_uri("", "//www.x.com/p") == "http://www.x.com/p"


def test_ip_hosts_as_spamassassin_reads_them() -> None:
    assert is_ip("66.92.69.221") and is_ip("[2001:db8::1]") and is_ip("2001:db8::1")
    assert not is_ip("01.2.3.4") and not is_ip("256.1.1.1") and not is_ip("example.com")


def test_fqdn_validity() -> None:
    assert is_fqdn_valid("a.b_c.example.com") and not is_fqdn_valid("b_c.com") and not is_fqdn_valid("com")
    assert not is_fqdn_valid("-a.com") and not is_fqdn_valid("a..com")


def test_the_uri_rules_see_an_unsubscribe_address(tmp_path: Path) -> None:
    rules = "util_rb_tld com\nuri LOCAL_UNSUB /\\bunsubscribe\\b/i\nscore LOCAL_UNSUB 1\n" \
            "uri LOCAL_ANY /^\\w+:\\/\\//\nscore LOCAL_ANY 1\n"
    eng = engine_for((str(write_rules(tmp_path, rules)),), 2, include_default=False)
    view = message_view(make_ctx(msg("x", "To leave, mail unsubscribe@news.com.")))
    names = {h.name for h in eng.run(view).hits}
    assert "LOCAL_UNSUB" in names and "LOCAL_ANY" not in names  # mailto: has no //
    assert view.uris == []  # the web-link list (Bayes, URIBL) is unchanged


def test_a_uri_rule_never_matches_across_two_uris(tmp_path: Path) -> None:
    # the joined list reads "http://Search.com\nmailto:qqqqqqqq@x.com": [^/]* would run from one
    # URI into the next; SpamAssassin tries each URI alone
    rules = "util_rb_tld com\nuri LOCAL_NOVOWEL m%^https?://[^/?&\\#]*[bcdfgjklmnpqrstvwxz]{7}%i\nscore LOCAL_NOVOWEL 1\n"
    eng = engine_for((str(write_rules(tmp_path, rules)),), 2, include_default=False)
    html = "<a href='http://Search.com'>s</a> <a href='mailto:qqqqqqqq@x.com'>m</a>"
    view = message_view(make_ctx(msg("x", html, ctype="text/html")))
    assert "LOCAL_NOVOWEL" not in {h.name for h in eng.run(view).hits}
    assert "LOCAL_NOVOWEL" not in {h.name for h in eng.run(view, lazy=False).hits}
    html2 = "<a href='http://wwwxxzzqq.com/'>s</a>"
    assert "LOCAL_NOVOWEL" in {h.name for h in eng.run(message_view(make_ctx(msg("x", html2, ctype="text/html")))).hits}


def test_redirector_patterns_are_read_and_a_bad_one_is_listed(tmp_path: Path) -> None:
    from gateway_milter.antispam.sarules import load_rules

    rules = ("util_rb_tld com\nredirector_pattern m'^http://r\\.example\\.com/go\\?to=(.*)$'i\n"
             "redirector_pattern /unterminated(\n")
    rs = load_rules([write_rules(tmp_path, rules)])
    assert len(rs.redirectors) == 1 and rs.tlds == {"com"}
    assert any(k.startswith("redirector_pattern") for k in rs.unsupported)  # `rules check` lists it
    eng = engine_for((str(write_rules(tmp_path, rules)),), 2, include_default=False)
    assert "http://bad.com/x" in eng.uri_settings.canonicalize("http://r.example.com/go?to=http://bad.com/x")


def test_rawbody_is_bounded_over_many_parts() -> None:
    parts = "".join(f"--XX\r\nContent-Type: text/plain\r\n\r\n{'x' * 400_000}\r\n" for _ in range(8))
    raw = (f"From: a@b.example\r\nTo: c@d.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: multipart/mixed; boundary=XX\r\n\r\n{parts}--XX--\r\n").encode()
    from gateway_milter.antispam.saview import MAX_TEXT

    assert len(message_view(make_ctx(raw)).rawbody) <= MAX_TEXT + 8
