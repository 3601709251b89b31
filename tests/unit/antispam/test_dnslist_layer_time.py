"""The dnsbl and uribl layers end their waits with their own time budget (``budget_s``: 8 s
each), not the stage's: with the lists' servers not answering, URIBL's 100 lookups on the
resolver's 8 workers held the end of the message 20 s, and 30 dead DNSBL zones held RCPT 12 s.
Lookups left without an answer are unknown (not scored), as a time-out is."""

from __future__ import annotations

import time

import pytest

from gateway_milter.layers import dnsbl, uribl
from gateway_milter.net.resolver import DnsAnswer, Resolver, StaticBackend
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg, policy
from tests.unit.dns_helpers import resolving_with


class DeadServers(StaticBackend):
    """A list server that does not answer: each lookup takes the whole time it is given."""

    def lookup(self, name: str, rdtype: str, timeout: float) -> DnsAnswer:
        time.sleep(min(timeout, 1.0))
        return DnsAnswer(name, rdtype, "timeout", error="no answer")


@pytest.mark.parametrize("layer", ["dnsbl", "uribl"])
def test_a_dns_list_layer_waits_no_longer_than_its_own_time(monkeypatch: pytest.MonkeyPatch, store: object,
                                                            layer: str) -> None:
    cls = dnsbl.DnsblLayer if layer == "dnsbl" else uribl.UriblLayer
    monkeypatch.setattr(cls, "budget_s", 0.3)
    zones = [{"zone": f"z{i}.test", "weight": 1} for i in range(24)]
    links = " ".join(f"http://site{i}.test/" for i in range(4))
    with resolving_with(Resolver(backend=DeadServers(), timeout=5.0, workers=8)):
        ctx = make_ctx(msg("x", "buy " + links), policy({layer: {"zones": zones}}), ip="198.51.100.7", stage=Stage.EOM)
        t0 = time.monotonic()
        res = ctx.layer(layer)
        took = time.monotonic() - t0
    # (without the layer's own time: 24 or 96 lookups of 1 s on 8 workers, 3 to 12 s)
    assert took < 2.0, took
    assert len(res.fact("unknown")) == 24 * (1 if layer == "dnsbl" else 4) and not res.symbols
