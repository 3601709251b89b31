"""URIBL looks up the host a browser would go to, never the reader's own network, and takes no
refusal answer for a listing: tabs and line breaks inside a link are dropped, a backslash is a
slash in http(s) links, an IPv4-mapped IPv6 host is its IPv4 address, a zone id makes no host
(it crashed the layer, so the message's other links went unjudged), private and link-local
addresses are not sent to the lists, and Spamhaus DBL's 127.0.1.255 ("IP queries prohibited")
is no listing."""

from __future__ import annotations

from gateway_milter.antispam.dnslists import parse_zones
from gateway_milter.antispam.urls import normalize_link, url_host
from gateway_milter.net.resolver import StaticBackend
from tests.unit.antispam.helpers import make_ctx, msg, policy

REFUSE = {"uribl": {"zones": [{"zone": "uri.test", "weight": 4, "action": "refuse"}]}}


def html(body: str) -> bytes:
    return msg("x", f"<html><body>{body}</body></html>", ctype="text/html; charset=utf-8")


def test_dbl_refusing_an_ip_query_is_no_listing(dns: StaticBackend) -> None:
    z = parse_zones(({"zone": "dbl.spamhaus.org", "action": "refuse"},), "zones", "URIBL_")[0]
    assert not z.accepts("127.0.1.255") and z.accepts("127.0.1.2")
    dns.add("5.113.0.203.dbl.spamhaus.org", "A", ["127.0.1.255"])
    pol = policy({"uribl": {"zones": [{"zone": "dbl.spamhaus.org", "weight": 6, "action": "refuse"}]}})
    res = make_ctx(msg("x", "see http://203.0.113.5/page"), pol).layer("uribl")
    assert not res.symbols, res.symbols


def test_a_scoped_ipv6_link_leaves_the_other_links_judged(dns: StaticBackend) -> None:
    dns.add("evil.test.uri.test", "A", ["127.0.0.2"])
    body = '<a href="http://[fe80::1%25eth0]/">a</a> <a href="http://evil.test/">b</a>'
    res = make_ctx(html(body), policy(REFUSE)).layer("uribl")
    assert res.error is None, res.error
    assert res.has("URIBL_URI_TEST")
    assert url_host("http://[fe80::1%25eth0]/") is None


def test_an_ipv4_mapped_link_is_looked_up_as_ipv4(dns: StaticBackend) -> None:
    dns.add("1.2.0.192.uri.test", "A", ["127.0.0.2"])
    res = make_ctx(html('<a href="http://[::ffff:192.0.2.1]/">x</a>'), policy(REFUSE)).layer("uribl")
    assert res.has("URIBL_URI_TEST"), res.fact("targets")


def test_a_backslash_is_a_slash_in_web_links(dns: StaticBackend) -> None:
    assert url_host("http://evil.test\\@good.test/") == "evil.test"
    assert normalize_link("http:\\\\evil.test\\path") == "http://evil.test/path"
    assert url_host("mailto:a\\@b.test") is None  # (not a web link: left alone)
    dns.add("evil.test.uri.test", "A", ["127.0.0.2"])
    for href in ("http://evil&#46;test\\@example.com/", "http:\\\\evil&#46;test\\"):
        res = make_ctx(html(f'<a href="{href}">x</a>'), policy(REFUSE)).layer("uribl")
        assert res.has("URIBL_URI_TEST"), (href, res.fact("targets"))


def test_tabs_and_line_breaks_inside_a_link_are_dropped(dns: StaticBackend) -> None:
    dns.add("evil.test.uri.test", "A", ["127.0.0.2"])
    res = make_ctx(html('<a href="http://ev&#9;il.te&#10;st/">x</a>'), policy(REFUSE)).layer("uribl")
    assert res.has("URIBL_URI_TEST"), res.fact("targets")


def test_private_and_link_local_link_addresses_are_not_looked_up(dns: StaticBackend) -> None:
    body = "router http://192.168.1.1/ and http://10.1.2.3/ and http://[fe80::1]/ and http://100.64.0.1/"
    dns.add("2.0.0.127.uri.test", "A", ["127.0.0.2"])
    make_ctx(msg("x", body + " test http://127.0.0.2/"), policy(REFUSE)).layer("uribl")
    asked = [n for n, _ in dns.calls if n.endswith(".uri.test")]
    assert set(asked) == {"2.0.0.127.uri.test"}, asked  # loopback stays (lists' test entry); no private one


def test_an_idn_host_is_encoded_as_browsers_encode_it() -> None:
    # UTS 46 without the transitional mapping: Python's IDNA 2003 codec makes faß.de fass.de
    assert url_host("http://faß.de/") == "xn--fa-hia.de"
    assert url_host("http://bücher.example/x") == "xn--bcher-kva.example"
    assert url_host("http://ＥＸＡＭＰＬＥ。com/") == "example.com"
    assert url_host("http://１２７。０。０。２/") == "127.0.0.2"


def test_numeric_decoy_links_do_not_push_a_domain_out_of_domain_only_zones(dns: StaticBackend) -> None:
    # max_lookups counts what some zone asks: with a domain-only zone, IP links ask nothing
    dns.add("evil.test.dom.test", "A", ["127.0.0.2"])
    decoys = " ".join(f"http://203.0.113.{i}/" for i in range(1, 30))
    zones = {"uribl": {"zones": [{"zone": "dom.test", "weight": 4, "action": "refuse", "kind": "domain"}],
                       "max_lookups": 5}}
    res = make_ctx(msg("x", decoys + " and http://evil.test/"), policy(zones)).layer("uribl")
    assert res.has("URIBL_DOM_TEST"), res.fact("targets")
    assert res.fact("targets") == ["evil.test"]
    # an ip-only zone, the other way round
    dns.add("5.113.0.203.ip.test", "A", ["127.0.0.2"])
    names = " ".join(f"http://decoy{i}.test/" for i in range(30))
    zones = {"uribl": {"zones": [{"zone": "ip.test", "weight": 4, "action": "refuse", "kind": "ip"}],
                       "max_lookups": 5}}
    res = make_ctx(msg("x", names + " and http://203.0.113.5/"), policy(zones)).layer("uribl")
    assert res.has("URIBL_IP_TEST"), res.fact("targets")
