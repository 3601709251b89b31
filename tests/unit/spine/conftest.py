from __future__ import annotations

from typing import Any

import pytest

from gateway_milter import layers
from gateway_milter.pipeline.transaction import Gateway
from gateway_milter.policy.provider import StaticPolicyProvider
from gateway_milter.policy.snapshot import PolicySnapshot

SPINE_LAYERS = {"lists", "size", "direction", "relay"}
BASE_POLICY: dict[str, Any] = {
    "gateway": {"hostname": "mx.example.com"},
    # the spine's own layers only: the other layers have their own tiers (and need DNS, clamd)
    "settings": {lid: {"mode": "off"} for lid in layers.available() if lid not in SPINE_LAYERS},
    "domains": [{"name": "example.com"}, {"name": "other.example", "settings": {"lists": {"block_action": "quarantine"}}}],
    "trusted_networks": ["10.0.0.0/8", "2001:db8:1::/48"],
    "lists": [
        {"list": "block", "kind": "sender", "value": "*@spam.test"},
        {"list": "block", "kind": "sender", "value": "*@held.test", "domain": "other.example"},
        {"list": "block", "kind": "recipient", "value": "closed@example.com"},
        {"list": "block", "kind": "recipient", "value": "held@other.example", "domain": "other.example"},
        {"list": "block", "kind": "ip", "value": "192.0.2.0/24"},
        {"list": "allow", "kind": "ip", "value": "192.0.2.7"},
        {"list": "block", "kind": "host", "value": "*.dialup.test"},
    ],
}


class MemoryQuarantine:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, dict[str, Any]]] = []

    def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        meta = {**meta, "qid": f"q{len(self.items) + 1}", "path": f"x/q{len(self.items) + 1}.eml"}
        self.items.append((raw, meta))
        return meta


class ListSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def make_gateway(doc: dict[str, Any] | None = None) -> tuple[Gateway, MemoryQuarantine, ListSink]:
    q, s = MemoryQuarantine(), ListSink()
    snap = PolicySnapshot.from_document(doc or BASE_POLICY, version=7)
    return Gateway(StaticPolicyProvider(snap), q, s), q, s


@pytest.fixture
def gateway() -> tuple[Gateway, MemoryQuarantine, ListSink]:
    return make_gateway()
