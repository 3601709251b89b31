"""A DNS blocklist that gives no answer (SERVFAIL, time-out, the message's DNS budget spent)
degrades to unknown, as its fail mode says; the message's trace must say so. The zones were
kept only in the layer's fact ``unknown``, which the message log does not record: its trace
read "checked: no symbols", as for a client no list knows, so spam from a listed client that
was delivered during a DNS outage left no sign of why it scored lower."""

from __future__ import annotations

from gateway_milter.net.resolver import StaticBackend
from tests.unit.antispam.helpers import make_ctx, msg, policy


def _warnings(ctx, layer: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.detail for t in ctx.trace if t.source == layer and t.event == "warning"]


def test_it_traces_a_dnsbl_zone_that_did_not_answer(dns: StaticBackend) -> None:
    dns.add("7.113.0.203.bl.test", "A", "SERVFAIL")
    dns.add("7.113.0.203.other.test", "A", "TIMEOUT")
    pol = policy({"dnsbl": {"zones": [{"zone": "bl.test"}, {"zone": "other.test"}, {"zone": "fine.test"}]}})
    ctx = make_ctx(msg(), pol)
    res = ctx.layer("dnsbl")
    assert res.error is None and res.fact("unknown") == ["bl.test", "other.test"]
    (w,) = _warnings(ctx, "dnsbl")
    assert "bl.test" in w and "other.test" in w and "fine.test" not in w


def test_it_traces_a_uribl_lookup_that_did_not_answer(dns: StaticBackend) -> None:
    dns.add("spam.example.uri.test", "A", "SERVFAIL")
    pol = policy({"uribl": {"zones": [{"zone": "uri.test"}]}})
    ctx = make_ctx(msg("x", "see http://spam.example/offer"), pol)
    res = ctx.layer("uribl")
    assert res.error is None and res.fact("unknown") == ["spam.example.uri.test"]
    (w,) = _warnings(ctx, "uribl")
    assert "spam.example.uri.test" in w


def test_it_adds_no_warning_when_every_zone_answered(dns: StaticBackend) -> None:
    pol = policy({"dnsbl": {"zones": [{"zone": "bl.test"}]}})
    ctx = make_ctx(msg(), pol)
    ctx.layer("dnsbl")
    assert not _warnings(ctx, "dnsbl")


def test_a_list_refusing_the_query_is_unknown_and_traced(dns: StaticBackend) -> None:
    # Spamhaus answers 127.255.255.254 to queries through a public resolver: not a listing, and
    # not "not listed" either; the zone is in effect off, which only the trace can tell
    from gateway_milter.antispam.dnslists import refusal

    assert refusal(["127.255.255.254"]) == "127.255.255.254" and refusal(["127.0.0.2"]) is None
    dns.add("7.113.0.203.zen.test", "A", ["127.255.255.254"])
    ctx = make_ctx(msg("x", "y"), policy({"dnsbl": {"zones": [{"zone": "zen.test", "weight": 3}]}}), ip="203.0.113.7")
    res = ctx.layer("dnsbl")
    assert not res.symbols
    assert res.fact("unknown") == ["zen.test (the list refused the query: 127.255.255.254)"]
    assert any(t.source == "dnsbl" and t.event == "warning" and "refused" in t.detail for t in ctx.trace)
