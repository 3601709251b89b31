from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_milter import layers
from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.pipeline.rawmessage import split_message
from gateway_milter.pipeline.transaction import EomDecision, Gateway
from gateway_milter.policy.provider import StaticPolicyProvider
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import HeaderEdit

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
        self.stored = 0

    def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        self.stored += 1
        meta = {**meta, "qid": f"q{self.stored}", "path": f"x/q{self.stored}.eml"}
        self.items.append((raw, meta))
        return meta

    def delete(self, relpath: str) -> None:
        self.items = [(r, m) for r, m in self.items if m["path"] != relpath]


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


def apply_like_an_mta(headers: list[tuple[str, str]], edits: list[HeaderEdit]) -> list[tuple[str, str]]:
    """The header edits as libmilter applies them: a delete removes the index-th occurrence of
    the name (1-based, case-insensitive) and nothing else; the front sends index 0 as 1.
    (pymilter's TestCtx deletes every occurrence, which would hide a second copy.)"""
    out = list(headers)
    for e in edits:
        if e.op == "add":
            out.append((e.name, e.value))
        elif e.op == "insert":
            out.insert(0, (e.name, e.value))
        else:
            positions = [i for i, (n, _) in enumerate(out) if n.lower() == e.name.lower()]
            index = max(e.index, 1)
            if index <= len(positions):
                if e.op == "change":  # (in place, under the name it had)
                    out[positions[index - 1]] = (out[positions[index - 1]][0], e.value)
                else:
                    del out[positions[index - 1]]
    return out


def note_check(monkeypatch: pytest.MonkeyPatch, layer: type[Any], events: list[str], label: str, *,
               takes: float = 0.0) -> None:
    """Notes *label* in *events* each time a layer of this class checks a message; the check
    then takes *takes* seconds longer."""
    check = layer.check

    def noted(self: Any, ctx: Any, settings: Any) -> Any:
        events.append(label)
        time.sleep(takes)
        return check(self, ctx, settings)

    monkeypatch.setattr(layer, "check", noted)


def run_to_eom(gw: Gateway, raw: bytes, *, helo: str, mail_from: str,
               auth: str = "") -> tuple[MessageContext, EomDecision]:
    """*raw* from 198.51.100.5 to bob@example.com through every stage up to end of message, as
    the milter front hands it on; *auth* is the login of a client that authenticated."""
    conn = ConnectionInfo(client_ip="198.51.100.5", client_port=2525, client_name="unknown", helo=helo)
    if auth:
        conn.macros["{auth_authen}"] = auth
    ctx = gw.begin(conn)
    gw.mail(ctx, mail_from)
    assert gw.rcpt(ctx, "bob@example.com").action == "continue"
    headers, body = split_message(raw)
    for n, v in headers:
        ctx.add_header(n, v)
    ctx.body.write(body)
    return ctx, gw.eom(ctx)


@pytest.fixture
def store() -> Iterator[Any]:
    """An in-memory state store as the process's default (BATV keys, greylisting, counters)."""
    from gateway_milter.store import set_default_store
    from gateway_milter.store.memory import MemoryStore

    s = MemoryStore()
    set_default_store(s)
    yield s
    set_default_store(None)
