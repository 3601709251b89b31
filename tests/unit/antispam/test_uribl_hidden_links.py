"""Links that were hidden from URIBL, found in an audit of the layer:

- an email address touching a link ("sales@shop.test,http://evil.test/buy") took the link with
  it when addresses were taken out of the text, and "www.paypal.com@evil.test/login" (a link to
  evil.test, as SpamAssassin's parser reads it) was taken for an address;
- 2,000 copies of one image filled an HTML part's bound on links, so the real link after them
  was never a candidate: past the bound, links not seen yet are still kept;
- a full-width "＼" or "＠" in a host became "\\" or "@", which reached DNS, where "\\" reads as
  an escape ("ev\\il.test" was asked as evil.test): such a host is none, as browsers refuse it.

And two entries for one zone (a list's bits with their own symbols) keep the codes of both in
the ``listed`` fact (the second's overwrote the first's)."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.saview import message_view
from gateway_milter.antispam.urls import url_host
from gateway_milter.layers.uribl import lookup_targets, message_links
from gateway_milter.net.resolver import StaticBackend
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg, policy
from tests.unit.dns_helpers import RecordingResolver, resolving_with


def targets(raw: bytes) -> list[str]:
    return lookup_targets(message_links(message_view(make_ctx(raw))), set(), 20)


@pytest.mark.parametrize(("body", "want"), [
    ("questions: sales@shop.test,http://evil.test/buy", ["evil.test"]),
    ("questions: sales@shop.test|http://evil.test/buy", ["evil.test"]),
    ("questions: sales@shop.test)http://evil.test/buy", ["evil.test"]),
    ("write to mailto:sales@shop.test,http://evil.test/buy", ["evil.test"]),
    ("log in at www.paypal.com@evil.test/login", ["evil.test"]),
    # an address alone is still no link, nor a host in it
    ("write to sales@shop.test or bob@www.shop.test.", []),
])
def test_a_link_touching_an_address_is_looked_up(body: str, want: list[str]) -> None:
    assert targets(msg("x", body)) == want


def test_copies_of_one_image_do_not_hide_the_link_after_them() -> None:
    junk = '<img src="//cdn.test/p">' * 2500
    raw = msg("x", f"<html><body>{junk}<a href='http://evil.test/buy'>Buy now</a></body></html>",
              ctype="text/html; charset=utf-8")
    assert targets(raw) == ["evil.test", "cdn.test"]  # (the anchor with text ranks first)
    many = "".join(f'<img src="//cdn{i}.test/p">' for i in range(2500))  # 2,500 different ones: the bound
    raw = msg("x", f"<html><body>{many}<a href='http://evil.test/buy'>Buy now</a></body></html>",
              ctype="text/html; charset=utf-8")
    links = message_links(message_view(make_ctx(raw)))
    assert len(links) == 2000 and all("evil.test" not in u for _, u in links)


@pytest.mark.parametrize("url", ["http://ev＼il.test/", "http://ev＼046il.test/", "http://ev＠il.test/",
                                 "http://ev＼0il.test/"])
def test_a_host_the_mapping_makes_unreadable_is_none(url: str) -> None:
    assert url_host(url) is None
    assert lookup_targets([url], set(), 20) == []


def test_two_entries_for_one_zone_keep_both_codes(store: object) -> None:
    backend = StaticBackend({("evil.test.multi.test", "A"): ["127.0.0.2", "127.0.0.4"]})
    zones = [{"zone": "multi.test", "symbol": "M_A", "codes": ["127.0.0.2"]},
             {"zone": "multi.test", "symbol": "M_B", "codes": ["127.0.0.4"]}]
    with resolving_with(RecordingResolver(backend, [])):
        res = make_ctx(msg("x", "http://evil.test/"), policy({"uribl": {"zones": zones}}), stage=Stage.EOM).layer("uribl")
    assert res.fact("listed") == {"multi.test": {"evil.test": ["127.0.0.2", "127.0.0.4"]}}
    assert {"M_A", "M_B"} <= {s.name for s in res.symbols}


def test_uribl_leaves_the_other_layers_their_dns_queries(store: object) -> None:
    """Links are the sender's to choose: 20 links to 10 zones (settings the layer accepts) took
    every query the message had left, and a DKIM key looked up after them came back as a
    temporary error. URIBL now makes at most the allowance left less DNS_RESERVE, the best
    ranked links' first, the same lookups in prefetch and check, and says what it left out."""
    from gateway_milter.layers import uribl as layer
    from gateway_milter.net.resolver import NXDOMAIN, budget_for, get_resolver

    backend = StaticBackend({("site00.test.z0.test", "A"): ["127.0.0.2"]})
    zones = [{"zone": f"z{i}.test", "kind": "domain", "symbol": f"URIBL_Z{i}"} for i in range(10)]
    links = " ".join(f"http://site{i:02d}.test/" for i in range(20))
    events: list[str] = []
    with resolving_with(RecordingResolver(backend, events)):
        ctx = make_ctx(msg("x", "buy " + links), policy({"uribl": {"zones": zones, "max_lookups": 20}}), stage=Stage.EOM)
        budget = budget_for(ctx)
        for _ in range(5):  # (the lookups before end of message: DNSBL, SPF, ...)
            budget.counter.take()
        layer.UriblLayer().prefetch(ctx, ctx.policy.settings_for("uribl", None))
        res = ctx.layer("uribl")
        room = 200 - 5 - layer.DNS_RESERVE
        assert len(events) == room and res.fact("not_looked_up") == 200 - room
        assert res.fact("unknown") == [] and "URIBL_Z0" in {s.name for s in res.symbols}
        assert get_resolver().query("sel._domainkey.sender.test", "TXT", budget_for(ctx)).status == NXDOMAIN
        assert any("not made" in t.detail for t in ctx.trace if t.source == "uribl")
