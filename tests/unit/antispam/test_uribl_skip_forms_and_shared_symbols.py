"""URIBL: two entries of one zone with their own weights (a list's bits, the default symbol)
each count, whatever the order of the links; only the entry of the first listed link counted,
so a spammer putting a lightly weighted listed link first lowered the score. ``skip_domains``
and the local domains were compared, as written, with each link's organisational domain only:
an entry naming a host (``www.partner.test``), with a trailing dot, an IDN in U-labels, or a
hosted domain that is a subdomain (``mail.example.com``) never matched, and the link's domain
was sent to the list and scored."""

from __future__ import annotations

import pytest

from gateway_milter.net.resolver import StaticBackend
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg
from tests.unit.dns_helpers import RecordingResolver, resolving_with


def _policy(uribl: dict[str, object], domains: list[str] | None = None) -> PolicySnapshot:
    return PolicySnapshot.from_document({
        "settings": {"uribl": uribl, "scoring": {"layers": ["uribl"], "fitted_scores": False}},
        "domains": domains or ["example.com"]})


@pytest.mark.parametrize("body", ["See http://phish.test/ and http://abused.test/ now",
                                  "See http://abused.test/ and http://phish.test/ now"])
def test_entries_sharing_a_symbol_each_count_in_any_link_order(store: object, body: str) -> None:
    backend = StaticBackend()
    backend.add("phish.test.multi.example", "A", ["127.0.0.8"])
    backend.add("abused.test.multi.example", "A", ["127.0.0.64"])
    backend.add("other.test.multi.example", "A", ["127.0.0.8"])  # a second link on the first bit
    pol = _policy({"zones": [{"zone": "multi.example", "weight": 4, "mask": "0x08"},
                             {"zone": "multi.example", "weight": 1, "mask": "0x40"}]})
    with resolving_with(RecordingResolver(backend, [])):
        ctx = make_ctx(msg("Hi", body + " and http://other.test/"), pol, stage=Stage.EOM)
        uribl = ctx.layer("uribl")
        assert ctx.layer("scoring").fact("score") == 5.0  # 4 + 1: each entry once, not per link
    assert sorted(s.score for s in uribl.symbols if s.name == "URIBL_MULTI_EXAMPLE") == [1.0, 4.0]
    [listed] = [s for s in uribl.symbols if s.name == "URIBL_LISTED"]
    assert listed.detail == "abused.test, other.test, phish.test"  # every listed host


@pytest.mark.parametrize(("entry", "link"), [
    ("partner.test", "http://www.partner.test/x"),
    ("www.partner.test", "http://www.partner.test/x"),
    ("www.partner.test", "http://deep.www.partner.test/x"),
    ("partner.test.", "http://partner.test/x"),
    ("Partner.TEST", "http://partner.test/x"),
    ("bücher.test", "http://xn--bcher-kva.test/x"),
    ("bücher.test", "http://bücher.test/x"),
    (None, "http://mail.example.com/login"),  # the hosted domain itself
    (None, "http://www.mail.example.com/login"),
])
def test_skipped_names_in_every_form_are_never_looked_up(store: object, entry: str | None, link: str) -> None:
    events: list[str] = []
    pol = _policy({"zones": [{"zone": "uribl.example", "weight": 3}], "skip_domains": [entry] if entry else []},
                  domains=["mail.example.com"])
    with resolving_with(RecordingResolver(StaticBackend(), events)):
        ctx = make_ctx(msg("Hi", f"Please see {link} today"), pol, rcpts=("bob@mail.example.com",), stage=Stage.EOM)
        assert ctx.layer("uribl").fact("targets") == []
    assert events == []


def test_a_skipped_host_leaves_its_siblings_looked_up(store: object) -> None:
    events: list[str] = []
    pol = _policy({"zones": [{"zone": "uribl.example", "weight": 3}], "skip_domains": ["www.partner.test"]},
                  domains=["mail.example.com"])
    with resolving_with(RecordingResolver(StaticBackend(), events)):
        ctx = make_ctx(msg("Hi", "See http://shop.partner.test/ and http://example.com/"), pol,
                       rcpts=("bob@mail.example.com",), stage=Stage.EOM)
        assert ctx.layer("uribl").fact("targets") == ["partner.test", "example.com"]
