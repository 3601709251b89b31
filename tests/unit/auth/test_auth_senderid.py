"""Sender ID (RFC 4406/4407): PRA selection, record selection, the layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_milter.layers.spf import purported_responsible_address as pra
from gateway_milter.layers.spf import sender_id_record
from gateway_milter.net import resolver as r
from tests.unit.auth.auth_helpers import make_ctx, message


def test_it_selects_the_purported_responsible_address() -> None:
    assert pra([("From", "a@x.test")]) == ("a@x.test", "")
    assert pra([("From", "a@x.test"), ("Sender", "s@y.test")]) == ("s@y.test", "")
    resent = [("Resent-From", "r@z.test"), ("Resent-Sender", "rs@z.test"), ("Received", "by x"),
              ("Resent-Sender", "old@w.test"), ("From", "a@x.test")]
    assert pra(resent) == ("rs@z.test", "")
    assert pra([("Resent-From", "r@z.test"), ("Received", "by x"), ("Resent-Sender", "o@w.test")]) == ("r@z.test", "")
    assert pra([("From", "a@x.test"), ("From", "b@x.test")])[0] is None
    assert pra([("From", "a@x.test, b@x.test")])[0] is None
    assert pra([("Subject", "hi")]) == (None, "no PRA header")


def test_it_prefers_spf2_pra_records_and_falls_back_to_spf1() -> None:
    assert sender_id_record(("spf2.0/mfrom,pra ip4:192.0.2.0/24 -all", "v=spf1 -all")) == (
        "v=spf1 ip4:192.0.2.0/24 -all", "")
    assert sender_id_record(("spf2.0/mfrom -all", "v=spf1 a -all")) == ("v=spf1 a -all", "")
    assert sender_id_record(("spf2.0/pra -all", "spf2.0/pra +all")) == (None, "permerror")
    assert sender_id_record(("hello",)) == (None, "none")


@pytest.fixture()
def zone() -> Iterator[r.StaticBackend]:
    be = r.StaticBackend({("example.test", "TXT"): ["spf2.0/pra ip4:192.0.2.0/28 -all"],
                          ("slow.test", "TXT"): "TIMEOUT"})
    prev = r.set_resolver(r.Resolver(backend=be, timeout=5.0))  # generous: it only bounds waits, which a loaded machine stretches
    yield be
    r.set_resolver(prev)


def test_it_checks_sender_id_when_switched_on(zone: r.StaticBackend) -> None:
    doc = {"domains": ["local.test"], "settings": {"senderid": {"mode": "on"}}}
    ok = make_ctx(message(), ip="192.0.2.3", doc=doc)
    assert ok.layer("senderid").fact("result") == "pass"
    bad = make_ctx(message(), ip="203.0.113.3", doc=doc)
    assert {s.name for s in bad.layer("senderid").symbols} == {"SENDERID_FAIL"}
    slow = make_ctx(message(frm="a@slow.test"), ip="203.0.113.3", doc=doc)
    assert slow.layer("senderid").fact("result") == "temperror"
    assert make_ctx(message(), ip="203.0.113.3").layer("senderid").skipped == "disabled"
