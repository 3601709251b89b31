"""DKIM's key lookups and DMARC's policy lookups start when end of message begins, before the
policy asks any layer, so their answers arrive while the other end-of-message layers compute;
mail the layers exempt is not looked up in advance."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.layers.dkim import DkimLayer
from gateway_milter.layers.dmarc import DmarcLayer
from gateway_milter.net.resolver import DnsAnswer, DnsBudget, Resolver, StaticBackend, set_resolver
from gateway_milter.pipeline.rawmessage import split_message
from gateway_milter.store import set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg
from tests.unit.spine.conftest import BASE_POLICY, make_gateway

KEY = "sel._domainkey.signer.test"
SIGNATURE = ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=signer.test;\r\n"
             "\ts=sel; h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
             "\tb=dGVzdA==\r\n")


class RecordingResolver(Resolver):
    def __init__(self, backend: StaticBackend, events: list[str]) -> None:
        super().__init__(backend=backend, timeout=2.0)
        self.events = events

    def prefetch(self, name: str, rdtype: str, budget: DnsBudget | None = None) -> Any:
        self.events.append(f"dns:{name}")
        return super().prefetch(name, rdtype, budget)

    def query(self, name: str, rdtype: str, budget: DnsBudget | None = None) -> DnsAnswer:
        self.events.append(f"dns:{name}")
        return super().query(name, rdtype, budget)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    ev: list[str] = []
    prev = set_resolver(RecordingResolver(StaticBackend({}, delay=0.05), ev))
    set_default_store(MemoryStore())
    dkim_check, dmarc_check = DkimLayer.check, DmarcLayer.check

    def dkim(self: DkimLayer, ctx: MessageContext, settings: Any) -> Any:
        ev.append("check:dkim")
        return dkim_check(self, ctx, settings)

    def dmarc(self: DmarcLayer, ctx: MessageContext, settings: Any) -> Any:
        ev.append("check:dmarc")
        return dmarc_check(self, ctx, settings)

    monkeypatch.setattr(DkimLayer, "check", dkim)
    monkeypatch.setattr(DmarcLayer, "check", dmarc)
    yield ev
    set_default_store(None)
    set_resolver(prev)


def policy() -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"].update({"dkim": {"mode": "on"}, "dmarc": {"mode": "on"}, "spf": {"mode": "on"}})
    return doc


def run(auth: str = "") -> MessageContext:
    gw, _, _ = make_gateway(policy())
    conn = ConnectionInfo(client_ip="198.51.100.5", client_port=2525, client_name="unknown", helo="mx.sub.sender.test")
    if auth:
        conn.macros["{auth_authen}"] = auth
    ctx = gw.begin(conn)
    gw.mail(ctx, "alice@sender.test")
    assert gw.rcpt(ctx, "bob@example.com").action == "continue"
    headers, body = split_message(msg("hello", headers=SIGNATURE).replace(b"alice@sender.test>",
                                                                          b"alice@mail.sender.test>", 1))
    for n, v in headers:
        ctx.add_header(n, v)
    ctx.body.write(body)
    gw.eom(ctx)
    return ctx


def test_key_and_policy_lookups_start_before_any_layer_is_asked(events: list[str]) -> None:
    ctx = run()
    assert "check:dkim" in events and "check:dmarc" in events, events
    first_check = min(i for i, e in enumerate(events) if e.startswith("check:"))
    early = events[:first_check]
    # the key of the signature, the From domain's policy and its organisational domain's
    assert {f"dns:{KEY}", "dns:_dmarc.mail.sender.test", "dns:_dmarc.sender.test"} <= set(early), events
    res = ctx.layer("dkim")
    assert [s["d"] for s in res.fact("signatures")] == ["signer.test"]
    assert ctx.layer("dmarc").fact("from_domain") == "mail.sender.test"


def test_exempt_mail_is_not_looked_up_in_advance(events: list[str]) -> None:
    ctx = run(auth="alice")
    assert not any(e in events for e in (f"dns:{KEY}", "dns:_dmarc.mail.sender.test", "dns:_dmarc.sender.test")), events
    assert ctx.layer("dkim").fact("exempt") == "authenticated"
