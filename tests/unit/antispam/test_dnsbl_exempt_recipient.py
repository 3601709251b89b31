"""A recipient on the recipient allow list (``postmaster@``, ``abuse@``) or whose user switched
anti-spam off is not refused by a DNSBL zone: a listed host's admin must be able to reach the
postmaster to ask for delisting. It was refused with 554 at RCPT like every other recipient.
The zones still judge the client once for the message: the other recipients are refused, and
when every recipient is exempt the message is delivered (judged again at end of message, it is
allow-listed). Quarantining zones spare only a message whose recipients are all exempt."""

from __future__ import annotations

import copy
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.context import ConnectionInfo
from gateway_milter.net.resolver import Resolver, StaticBackend
from gateway_milter.store.memory import MemoryStore
from tests.unit.dns_helpers import resolving_with
from tests.unit.spine.conftest import BASE_POLICY, make_gateway
from tests.unit.spine.test_milter_front import NO_NR_OPTS, run

LISTED = "198.51.100.10"


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


@pytest.fixture
def listed() -> Any:
    backend = StaticBackend()
    backend.add(".".join(reversed(LISTED.split("."))) + ".bl.test", "A", ["127.0.0.2"])
    with resolving_with(Resolver(backend=backend, timeout=1.0)):
        yield backend


def _doc(action: str, **more: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"]["dnsbl"] = {"mode": "on", "zones": [{"zone": "bl.test", "weight": 5, "action": action}], **more}
    doc["lists"] = [{"list": "allow", "kind": "recipient", "value": "postmaster@example.com"}]
    doc["users"] = [{"addresses": ["nofilter@example.com"], "disable_antispam": True}]
    return doc


def _answers(gw: Any, *rcpts: str) -> tuple[list[str], Any]:
    ctx = gw.begin(ConnectionInfo(client_ip=LISTED, client_name="unknown", helo="mx.outside.test"))
    gw.mail(ctx, "alice@outside.test")
    out = []
    for r in rcpts:
        d = gw.rcpt(ctx, r)
        out.append(d.reply.code if d.reply is not None else "250")
    return out, ctx


@pytest.mark.parametrize("engine", ["sieve", "rules"])
def test_an_allow_listed_recipient_is_not_refused_by_a_zone(listed: Any, store: MemoryStore, engine: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "rules":
        from gateway_milter.policy import evaluate

        monkeypatch.setattr(evaluate, "_build_engine", lambda snap: evaluate.RulePolicyEngine(snap))
    gw, _q, _ = make_gateway(_doc("refuse"))
    codes, ctx = _answers(gw, "postmaster@example.com", "bob@example.com", "nofilter@example.com",
                          "prvs=1234abcdef=postmaster@example.com")
    assert codes == ["250", "554", "250", "250"]
    ctx.close()


def test_a_message_to_the_postmaster_alone_is_delivered(listed: Any, store: MemoryStore) -> None:
    gw, q, sink = make_gateway(_doc("refuse"))
    ctx, rc = run(gw, "alice@outside.test", "postmaster@example.com", ip=LISTED)
    assert rc == Milter.ACCEPT and not q.items
    assert sink.records[-1]["action"] == "accept"
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com", ip=LISTED)  # (the zone still refuses)
    assert rc == Milter.REJECT and ctx._reply[0] == "554"


def test_postmaster_first_then_a_refused_recipient_delivers_to_the_postmaster(listed: Any, store: MemoryStore) -> None:
    gw, _q, _ = make_gateway(_doc("refuse"))
    codes, ctx = _answers(gw, "postmaster@example.com", "bob@example.com")
    assert codes == ["250", "554"]
    for h, v in (("From", "alice@outside.test"), ("To", "postmaster@example.com"), ("Subject", "delisting")):
        ctx.add_header(h, v)
    ctx.body.write(b"Please delist us.\r\n")
    d = gw.eom(ctx)
    assert d.action.value == "accept", ctx.trace
    judged = [t.detail for t in ctx.trace if t.source == "dnsbl"]
    assert judged[0].startswith("DNSBL_LISTED") and judged[-1] == "no symbols"  # (judged again: allow-listed)
    ctx.close()


def test_a_quarantining_zone_spares_a_message_to_exempt_recipients_only(listed: Any, store: MemoryStore) -> None:
    gw, q, _ = make_gateway(_doc("quarantine"))
    _ctx, rc = run(gw, "alice@outside.test", "postmaster@example.com", ip=LISTED)
    assert rc == Milter.ACCEPT and not q.items
    _ctx, rc = run(gw, "alice@outside.test", "postmaster@example.com", "bob@example.com", ip=LISTED)
    assert q.items  # (one message for both: held)


def test_the_exemption_follows_exempt_allowlisted(listed: Any, store: MemoryStore) -> None:
    gw, _q, _ = make_gateway(_doc("refuse", exempt_allowlisted=False))
    codes, ctx = _answers(gw, "postmaster@example.com")
    assert codes == ["554"]
    ctx.close()
