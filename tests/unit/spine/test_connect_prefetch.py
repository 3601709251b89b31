"""Client-address lookups (DNSBL, reverse DNS) start at connect, before HELO and MAIL."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.net.resolver import Resolver, StaticBackend, set_resolver
from tests.unit.spine.conftest import BASE_POLICY, make_gateway


@pytest.fixture
def dns() -> Iterator[StaticBackend]:
    backend = StaticBackend({("5.100.51.198.bl.test", "A"): ["127.0.0.2"]})
    prev = set_resolver(Resolver(backend=backend, timeout=1.0))
    yield backend
    set_resolver(prev)


def policy_with(**settings: dict[str, object]) -> dict[str, object]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"].update(settings)  # type: ignore[attr-defined]
    return doc


def wait_for(backend: StaticBackend, key: tuple[str, str]) -> bool:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if key in backend.calls:
            return True
        time.sleep(0.01)
    return False


def test_dnsbl_and_ptr_lookups_start_at_connect(dns: StaticBackend) -> None:
    gw, _, _ = make_gateway(policy_with(dnsbl={"mode": "on", "zones": [{"zone": "bl.test"}]}, rdns={"mode": "score"}))
    gw.connect(ConnectionInfo(client_ip="198.51.100.5", client_port=2525, client_name="unknown"))
    assert wait_for(dns, ("5.100.51.198.bl.test", "A"))
    assert wait_for(dns, ("5.100.51.198.in-addr.arpa", "PTR"))
    # the layer at MAIL finds the answer cached: no second lookup
    ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.5", client_port=2525, client_name="unknown"))
    gw.mail(ctx, "alice@outside.test")
    assert ctx.layer("dnsbl").has("DNSBL_BL_TEST")
    assert dns.calls.count(("5.100.51.198.bl.test", "A")) == 1


def test_nothing_is_looked_up_at_connect_when_those_layers_are_off(dns: StaticBackend) -> None:
    gw, _, _ = make_gateway()
    gw.connect(ConnectionInfo(client_ip="198.51.100.5", client_port=2525, client_name="unknown"))
    time.sleep(0.1)
    assert dns.calls == []
