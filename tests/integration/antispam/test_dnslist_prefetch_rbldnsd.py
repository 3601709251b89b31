"""DNSBL and URIBL lookups started ahead of the layers' checks (a domain's own DNSBL zones at
RCPT, URIBL when end of message begins) through the whole transaction, against rbldnsd on
loopback: the same listings as the checks find on their own."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.net.resolver import Resolver, set_resolver
from gateway_milter.pipeline.rawmessage import split_message
from gateway_milter.verdict import Action
from tests.services import rbldnsd_server
from tests.unit.antispam.helpers import msg
from tests.unit.spine.conftest import BASE_POLICY, make_gateway

pytestmark = pytest.mark.integration

IP4SET = """$SOA 300 ns1.bl.test. hostmaster.bl.test. 0 600 300 86400 300
$NS 300 ns1.bl.test.
:127.0.0.2:Listed in bl.test
127.0.0.2
198.51.100.99
"""
DNSET = """$SOA 300 ns1.uribl.test. hostmaster.uribl.test. 0 600 300 86400 300
$NS 300 ns1.uribl.test.
:127.0.1.2:URIBL listed
.badsite.test
"""


@pytest.fixture(scope="module")
def rbl() -> Iterator[Resolver]:
    with rbldnsd_server({("bl.test", "ip4set"): IP4SET, ("uribl.test", "dnset"): DNSET}) as srv:
        res = Resolver([("127.0.0.1", srv["port"])], timeout=2.0)
        prev = set_resolver(res)
        yield res
        set_resolver(prev)


def policy(**settings: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"].update(settings)
    doc["domains"][0]["settings"] = {"dnsbl": {"zones": [{"zone": "bl.test", "action": "refuse"}]}}
    return doc


def conn(ip: str) -> ConnectionInfo:
    return ConnectionInfo(client_ip=ip, client_port=2525, client_name="unknown", helo="mx.outside.test")


def test_a_domains_own_dnsbl_zone_refuses_at_rcpt(rbl: Resolver) -> None:
    gw, _, _ = make_gateway(policy(dnsbl={"mode": "on"}))  # no global zones
    ctx = gw.begin(conn("198.51.100.99"))
    gw.mail(ctx, "alice@outside.test")
    d = gw.rcpt(ctx, "bob@example.com")
    assert d.action == "reject" and d.reply is not None and d.reply.code == "554"
    ok = gw.begin(conn("203.0.113.5"))
    gw.mail(ok, "alice@outside.test")
    assert gw.rcpt(ok, "bob@example.com").action == "continue"


def test_uribl_started_at_end_of_message_finds_hex_ip_and_domain_listings(rbl: Resolver) -> None:
    uribl = {"mode": "on", "zones": [{"zone": "uribl.test", "kind": "domain", "weight": 3, "action": "quarantine"},
                                     {"zone": "bl.test", "kind": "ip", "symbol": "URIBL_IP_BL", "weight": 2}]}
    gw, quarantine, _ = make_gateway(policy(dnsbl={"mode": "on"}, uribl=uribl))
    ctx = gw.begin(conn("203.0.113.5"))
    gw.mail(ctx, "alice@outside.test")
    assert gw.rcpt(ctx, "bob@example.com").action == "continue"
    headers, body = split_message(msg("x", "hxxp://www.badsite[.]test/a and http://0x7f000002/ and http://ok.test/"))
    for n, v in headers:
        ctx.add_header(n, v)
    ctx.body.write(body)
    dec = gw.eom(ctx)
    res = ctx.layer("uribl")
    assert res.fact("targets") == ["badsite.test", "127.0.0.2", "ok.test"]
    assert res.has("URIBL_URIBL_TEST") and res.has("URIBL_IP_BL") and not res.fact("unknown")
    assert dec.action is Action.DISCARD and len(quarantine.items) == 1  # quarantined: the only recipient
