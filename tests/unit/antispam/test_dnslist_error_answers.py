"""A list's refusal to answer (Spamhaus's 127.255.255.x, URIBL.com's 127.0.0.1) is no listing:
a zone configured without codes must not refuse every client when its operator refuses our
queries (a public resolver, too many queries)."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.dnslists import parse_zones


def zone(**kw: object):  # type: ignore[no-untyped-def]
    return parse_zones(({"zone": "zen.example", **kw},), "zones", "DNSBL_")[0]


@pytest.mark.parametrize("answer", ["127.255.255.252", "127.255.255.254", "127.255.255.255", "127.0.0.255", "127.0.0.1"])
def test_error_answers_are_not_listings(answer: str) -> None:
    assert not zone().accepts(answer)
    assert not zone(action="refuse", mask="0xff").accepts(answer)


@pytest.mark.parametrize("answer", ["127.0.0.2", "127.0.0.4", "127.0.0.10", "127.0.1.2"])
def test_listings_still_count(answer: str) -> None:
    assert zone().accepts(answer)


def test_codes_that_name_127_0_0_1_take_it() -> None:
    assert zone(codes=["127.0.0.1-127.0.0.3"]).accepts("127.0.0.1")
    assert not zone(codes=["127.0.0.1-127.0.0.3"]).accepts("127.255.255.254")  # never an error code


def test_answers_outside_loopback_are_ignored() -> None:
    assert not zone().accepts("10.0.0.2")
    assert not zone().accepts("not an address")
