"""``max_certifiers`` bounds the trusted ``mv`` entries asked (one DNS query each), as the doc
says: the layer cut the ``mv`` list itself to its first ``max_certifiers`` entries, trusted or
not, so a message whose sender names a trusted certifier after five others was never certified
though no query had been made."""

from __future__ import annotations

from gateway_milter.net.resolver import StaticBackend
from gateway_milter.pipeline.runner import LayerResult
from tests.unit.antispam.helpers import make_ctx, msg, policy


def ctx_with(headers: str, settings: dict[str, object]):  # type: ignore[no-untyped-def]
    ctx = make_ctx(msg("x", "y", headers=headers), policy({"vbr": settings}))
    assert ctx.runner is not None
    ctx.runner._results["dkim"] = LayerResult("dkim", {"pass_domains": ["author.test"]})
    return ctx


def test_it_asks_a_trusted_certifier_named_after_untrusted_ones(dns: StaticBackend) -> None:
    dns.add("author.test._vouch.cert.test", "TXT", ["all"])
    others = ":".join(f"c{i}.example" for i in range(6))
    hdr = f"VBR-Info: md=author.test; mc=list; mv={others}:cert.test\r\n"
    res = ctx_with(hdr, {"trusted_certifiers": ["cert.test"]}).layer("vbr")
    assert res.has("VBR_CERTIFIED"), res.facts


def test_it_still_asks_at_most_max_certifiers_trusted_ones(dns: StaticBackend) -> None:
    dns.add("author.test._vouch.t3.test", "TXT", ["all"])
    hdr = "VBR-Info: md=author.test; mc=list; mv=t1.test:t2.test:t3.test\r\n"
    res = ctx_with(hdr, {"trusted_certifiers": ["t1.test", "t2.test", "t3.test"], "max_certifiers": 2}).layer("vbr")
    assert not res.has("VBR_CERTIFIED")  # the third trusted one is past the bound
