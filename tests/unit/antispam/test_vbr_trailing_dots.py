"""A VBR-Info field whose ``md`` or ``mv`` domains end in the root's dot (``md=author.test.``)
names the same domains: it was compared as written, so the DKIM-authenticated domain and the
trusted certifier never matched and the message was never certified."""

from __future__ import annotations

from gateway_milter.layers.vbr import parse_vbr_info
from gateway_milter.net.resolver import StaticBackend
from gateway_milter.pipeline.runner import LayerResult
from tests.unit.antispam.helpers import make_ctx, msg, policy


def test_trailing_dots_are_dropped_from_md_and_mv() -> None:
    assert parse_vbr_info("md=Author.test.; mc=list; mv=cert.test.:other.test") == {
        "md": "author.test", "mc": "list", "mv": "cert.test:other.test"}


def test_a_field_written_with_trailing_dots_is_certified(dns: StaticBackend) -> None:
    dns.add("author.test._vouch.cert.test", "TXT", ["all"])
    ctx = make_ctx(msg("x", "y", headers="VBR-Info: md=author.test.; mc=list; mv=cert.test.\r\n"),
                   policy({"vbr": {"trusted_certifiers": ["cert.test"]}}))
    assert ctx.runner is not None
    ctx.runner._results["dkim"] = LayerResult("dkim", {"pass_domains": ["author.test"]})
    res = ctx.layer("vbr")
    assert res.has("VBR_CERTIFIED"), res.facts
