"""A SpamAssassin rule and a layer's symbol of the same name and fact count once: Debian's
``RDNS_NONE`` (the relay that delivered to us, read from the Received field the MTA adds, has
no reverse name) and the rdns layer's ``RDNS_NONE`` (the SMTP client's PTR lookup). Where the
rdns layer ran, the rule still feeds the metas that read it, but the total, the parts and
``X-Spam-Status``'s tests name and score the check once (before: about a point more than the
tests showed)."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.context import MessageContext
from gateway_milter.net.resolver import StaticBackend
from tests.unit.auth.auth_helpers import make_ctx, rules_doc
from tests.unit.dns_helpers import dns  # noqa: F401 (fixture)

RULES = r"""
header   __RDNS_NONE      X-Spam-Relays-External =~ /^[^\]]+ rdns= /
meta     RDNS_NONE        __RDNS_NONE
score    RDNS_NONE        1.3
meta     LOCAL_NO_RDNS    RDNS_NONE && __LOCAL_HELLO
header   __LOCAL_HELLO    Subject =~ /Hello/
score    LOCAL_NO_RDNS    0.7
"""
RAW = (b"Received: from mx.sender.test (unknown [203.0.113.7])\r\n\tby mx.local.test (Postfix) with ESMTP id 4AbC\r\n"
       b"\tfor <bob@local.test>; Sat, 28 Nov 2026 10:00:01 +0000 (UTC)\r\n"
       b"From: Alice <alice@sender.test>\r\nTo: bob@local.test\r\nSubject: Hello\r\n"
       b"Message-ID: <abc.123@sender.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nHi there.\r\n")


def scored(tmp_path: Path, layers: list[str]) -> MessageContext:
    doc = rules_doc(tmp_path, RULES)
    doc["settings"]["scoring"] = {"layers": layers, "fitted_scores": False}
    doc["settings"]["rdns"] = {"scores": {"RDNS_NONE": 1.0}}
    ctx = make_ctx(RAW, ip="203.0.113.7", helo="mx.sender.test", mail_from="<alice@sender.test>", doc=doc)
    for lid in layers:  # (in the layer order: rdns at connect, rules at the end of the message)
        ctx.layer(lid)
    ctx.layer("scoring")
    return ctx


def test_rdns_none_counts_once(tmp_path: Path, dns: StaticBackend) -> None:  # noqa: F811
    ctx = scored(tmp_path, ["rdns", "rules"])  # (no PTR record for 203.0.113.7)
    assert ctx.layer("rdns").has("RDNS_NONE")
    rules = ctx.layer("rules")
    assert rules.fact("hits") == ["LOCAL_NO_RDNS"] and rules.fact("score") == 0.7  # (the meta still reads it)
    res = ctx.layer("scoring")
    rdns = round(sum(x.score for x in ctx.layer("rdns").symbols), 3)  # (RDNS_NONE 1.0, and the HELO's)
    assert res.fact("parts") == {"rdns": rdns, "rules": 0.7} and res.fact("score") == round(rdns + 0.7, 3)
    assert [s.name for s in ctx.symbols].count("RDNS_NONE") == 1


def test_the_rule_counts_where_the_rdns_layer_did_not_run(tmp_path: Path, dns: StaticBackend) -> None:  # noqa: F811
    ctx = scored(tmp_path, ["rules"])
    rules = ctx.layer("rules")
    assert sorted(rules.fact("hits")) == ["LOCAL_NO_RDNS", "RDNS_NONE"] and rules.fact("score") == 2.0
    assert ctx.layer("scoring").fact("score") == 2.0
