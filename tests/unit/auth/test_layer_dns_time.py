"""Each DNS-asking layer ends its waits with its own time budget (``Layer.budget_s``), as the
dnsbl and uribl layers do, not with what its stage has left: a sender whose name servers do not
answer held SPF, reverse DNS, DKIM, ARC, DMARC, Sender ID, VBR and callback verification up to the
whole stage (20 s at MAIL, 45 s at end of message), leaving nothing to the layers after them.
A lookup not answered in the layer's time is a temporary error, as a time-out is."""

from __future__ import annotations

import time

import pytest

from gateway_milter import layers
from gateway_milter.net.resolver import DnsAnswer, Resolver, StaticBackend
from gateway_milter.pipeline.runner import LayerResult
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, policy, store  # noqa: F401 - fixture
from tests.unit.dns_helpers import resolving_with

pytestmark = pytest.mark.usefixtures("store")  # a fresh state store per test (callback's cache)

SLOW_S = 3.0  # each lookup of the silent servers; the layers' own time is set to 0.3 s


class SilentServers(StaticBackend):
    """Name servers that do not answer: each lookup takes the time it is given, up to SLOW_S."""

    def lookup(self, name: str, rdtype: str, timeout: float) -> DnsAnswer:
        time.sleep(min(timeout, SLOW_S))
        return DnsAnswer(name, rdtype, "timeout", error="no answer")


def _signed(n: int) -> str:
    return "".join(f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=signer{i}.test; s=sel; "
                   f"h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n"
                   for i in range(n))


ARC = ("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=sealer.test; s=arc; b=AAAA\r\n"
       "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=sealer.test; s=arc; "
       "h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n"
       "ARC-Authentication-Results: i=1; mx.sealer.test; spf=pass smtp.mailfrom=sender.test\r\n")


def _raw(extra: str) -> bytes:
    return (f"{extra}From: Alice <alice@sender.test>\r\nTo: bob@example.com\r\nSubject: Hello\r\n"
            "Message-ID: <t1@sender.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nHi Bob.\r\n").encode()


# layer id, its stage, the message's extra header fields, what its findings say of the wait
CASES = [
    ("spf", Stage.MAIL, "", lambda r: r.fact("result") == "temperror"),
    ("rdns", Stage.MAIL, "", lambda r: r.fact("iprev") == "temperror"),
    ("dkim", Stage.EOM, _signed(5), lambda r: {s["result"] for s in r.fact("signatures")} == {"temperror"}),
    ("arc", Stage.EOM, ARC, lambda r: r.fact("cv") in ("temperror", "fail")),
    ("dmarc", Stage.EOM, "", lambda r: r.fact("result") == "temperror"),
    ("senderid", Stage.EOM, "", lambda r: r.fact("result") == "temperror"),
    ("callback", Stage.MAIL, "", lambda r: r.fact("error") == "DNS temporary error"),
    ("vbr", Stage.EOM, "VBR-Info: md=sender.test; mc=all; mv=c1.test:c2.test:c3.test\r\n",
     lambda r: r.fact("vbr") == "unknown"),
]
SETTINGS = {"vbr": {"mode": "on", "trusted_certifiers": ["c1.test", "c2.test", "c3.test"]}}


@pytest.mark.parametrize(("layer", "stage", "extra", "answered"), CASES, ids=[c[0] for c in CASES])
def test_a_dns_layer_waits_no_longer_than_its_own_time(monkeypatch: pytest.MonkeyPatch, layer: str, stage: Stage,
                                                       extra: str, answered: object) -> None:
    for layer_id in layers.available():
        monkeypatch.setattr(layers.get(layer_id), "budget_s", 0.3)  # (dmarc asks spf and dkim: each its own 0.3 s)
    with resolving_with(Resolver(backend=SilentServers(), timeout=10.0, workers=8)):
        settings = {layer: SETTINGS.get(layer, {"mode": "on"})}
        ctx = make_ctx(_raw(extra), policy(settings), ip="198.51.100.7", mail_from="alice@sender.test", stage=stage)
        if layer == "vbr":  # (the message's DKIM signature for sender.test verified)
            ctx.runner._results["dkim"] = LayerResult("dkim", facts={"pass_domains": ["sender.test"]})
        t0 = time.monotonic()
        res = ctx.layer(layer)
        took = time.monotonic() - t0
    # (with the stage's time instead: at least one unanswered lookup of SLOW_S)
    assert took < 1.5, (took, res.facts)
    assert answered(res), res.facts  # type: ignore[operator]


@pytest.mark.parametrize("layer", ["spf", "dkim"])
def test_the_same_through_real_dns_to_a_server_that_never_answers(monkeypatch: pytest.MonkeyPatch, layer: str) -> None:
    """The resolver's real backend (dnspython over UDP) against a loopback socket that reads
    every query and answers none."""
    import socket

    from gateway_milter.net.resolver import DnspythonBackend

    monkeypatch.setattr(layers.get(layer), "budget_s", 0.3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        backend = DnspythonBackend([silent.getsockname()], timeout=SLOW_S)
        with resolving_with(Resolver(backend=backend, timeout=SLOW_S, workers=8)):
            extra, stage, answered = next((c[2], c[1], c[3]) for c in CASES if c[0] == layer)
            ctx = make_ctx(_raw(extra), policy(), ip="198.51.100.7", mail_from="alice@sender.test", stage=stage)
            t0 = time.monotonic()
            res = ctx.layer(layer)
            took = time.monotonic() - t0
    assert took < 1.5, (took, res.facts)
    assert answered(res), res.facts  # type: ignore[operator]
