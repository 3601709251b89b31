"""DNSBL zones set only for a recipient's domain are looked up as soon as that domain is known
(the first accepted RCPT of inbound mail), not first inside the layer's check at end of message."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.net.resolver import Resolver, StaticBackend, set_resolver
from gateway_milter.verdict import Action
from tests.unit.spine.conftest import BASE_POLICY, make_gateway

CLIENT = "198.51.100.5"
GLOBAL_Q = ("5.100.51.198.global.test", "A")
DOMAIN_Q = ("5.100.51.198.domain.test", "A")


@pytest.fixture
def dns() -> Iterator[StaticBackend]:
    backend = StaticBackend({DOMAIN_Q: ["127.0.0.2"]})
    prev = set_resolver(Resolver(backend=backend, timeout=1.0))
    yield backend
    set_resolver(prev)


def policy(domain_zone_action: str = "score") -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"]["dnsbl"] = {"mode": "on", "zones": [{"zone": "global.test"}]}
    doc["domains"] = [
        {"name": "example.com", "settings": {"dnsbl": {"zones": [
            {"zone": "global.test"}, {"zone": "domain.test", "weight": 3, "action": domain_zone_action}]}}},
        *doc["domains"][1:],  # other.example, which the base policy's lists name
        {"name": "plain.example"},
    ]
    return doc


def seen(backend: StaticBackend, key: tuple[str, str], within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if key in backend.calls:
            return True
        time.sleep(0.01)
    return False


def conn() -> ConnectionInfo:
    return ConnectionInfo(client_ip=CLIENT, client_port=2525, client_name="unknown", helo="mx.outside.test")


def test_it_looks_up_a_domains_own_zone_at_rcpt_before_end_of_message(dns: StaticBackend) -> None:
    gw, _, _ = make_gateway(policy())
    gw.connect(conn())
    assert seen(dns, GLOBAL_Q)  # the global zone: at connect
    ctx = gw.begin(conn())
    gw.mail(ctx, "alice@outside.test")
    time.sleep(0.05)
    assert DOMAIN_Q not in dns.calls  # the recipient's domain is not known yet
    assert gw.rcpt(ctx, "bob@example.com").action == "continue"
    assert seen(dns, DOMAIN_Q)  # started at RCPT: in flight while DATA is sent
    ctx.add_header("Subject", "hi")
    ctx.body.write(b"hello\r\n")
    assert gw.eom(ctx).action is Action.ACCEPT
    res = ctx.layer("dnsbl")
    assert res.has("DNSBL_DOMAIN_TEST") and not res.has("DNSBL_GLOBAL_TEST")
    # the layer found the answers started earlier: no lookup twice
    assert dns.calls.count(DOMAIN_Q) == 1 and dns.calls.count(GLOBAL_Q) == 1


def test_a_domain_zone_that_refuses_refuses_at_rcpt_with_one_lookup(dns: StaticBackend) -> None:
    gw, _, _ = make_gateway(policy("refuse"))
    ctx = gw.begin(conn())
    gw.mail(ctx, "alice@outside.test")
    d = gw.rcpt(ctx, "bob@example.com")
    assert d.action == "reject" and d.reply is not None and "domain.test" in d.reply.text
    assert dns.calls.count(DOMAIN_Q) == 1


def test_a_domain_without_settings_of_its_own_starts_nothing_more(dns: StaticBackend) -> None:
    gw, _, _ = make_gateway(policy())
    ctx = gw.begin(conn())
    gw.mail(ctx, "alice@outside.test")
    assert seen(dns, GLOBAL_Q)
    assert gw.rcpt(ctx, "carol@plain.example").action == "continue"
    time.sleep(0.1)
    assert dns.calls == [GLOBAL_Q]

