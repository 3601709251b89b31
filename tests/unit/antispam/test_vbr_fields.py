"""VBR reads every VBR-Info field (up to five): a message may carry one per vouching domain
(the author's and its sending service's), and the one a trusted certifier vouches for counts.
A DNS failure is reported as unknown, not as "not certified"."""

from __future__ import annotations

from gateway_milter.net.resolver import StaticBackend
from gateway_milter.pipeline.runner import LayerResult
from tests.unit.antispam.helpers import make_ctx, msg, policy

POL = {"vbr": {"trusted_certifiers": ["cert.test"]}}


def ctx_with(headers: str, passing: list[str]):  # type: ignore[no-untyped-def]
    ctx = make_ctx(msg("x", "y", headers=headers), policy(POL))
    assert ctx.runner is not None
    ctx.runner._results["dkim"] = LayerResult("dkim", {"pass_domains": passing})
    return ctx


def test_the_second_field_is_read_when_the_first_is_not_vouched_for(dns: StaticBackend) -> None:
    dns.add("esp.test._vouch.cert.test", "TXT", ["all"])
    hdr = ("VBR-Info: md=author.test; mc=list; mv=other.test\r\n"
           "VBR-Info: md=esp.test; mc=list; mv=cert.test\r\n")
    res = ctx_with(hdr, ["author.test", "esp.test"]).layer("vbr")
    assert res.has("VBR_CERTIFIED"), res.facts
    assert res.fact("md") == "esp.test" and res.fact("certifier") == "cert.test"


def test_a_field_for_an_unauthenticated_domain_vouches_for_nothing(dns: StaticBackend) -> None:
    dns.add("esp.test._vouch.cert.test", "TXT", ["all"])
    hdr = ("VBR-Info: md=author.test; mc=list; mv=cert.test\r\n"
           "VBR-Info: md=esp.test; mc=list; mv=cert.test\r\n")
    res = ctx_with(hdr, ["author.test"]).layer("vbr")  # esp.test's signature did not pass
    assert not res.has("VBR_CERTIFIED") and res.fact("vbr") == "not certified"


def test_a_dns_failure_is_unknown(dns: StaticBackend) -> None:
    dns.add("author.test._vouch.cert.test", "TXT", "SERVFAIL")
    res = ctx_with("VBR-Info: md=author.test; mc=list; mv=cert.test\r\n", ["author.test"]).layer("vbr")
    assert res.fact("vbr") == "unknown" and not res.symbols
