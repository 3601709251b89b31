"""Allow-listed mail is not judged by the DNS blocklists, as the lists promise ("anti-spam layers
honour allowlisted"): a partner's server allowed by IP was refused (554) or quarantined when a
DNSBL listed it, and a listed link refused an allow-listed client's message.
The zones judge the client once, before the recipients are known: a listing counts once."""

from __future__ import annotations

import copy
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.net.resolver import Resolver, StaticBackend
from gateway_milter.store.memory import MemoryStore
from tests.unit.dns_helpers import resolving_with
from tests.unit.spine.conftest import BASE_POLICY, make_gateway
from tests.unit.spine.test_milter_front import NO_NR_OPTS, run

PARTNER, OTHER = "198.51.100.9", "198.51.100.10"
LINKED = b"From: a@outside.test\nTo: bob@example.com\nSubject: hi\n\nSee http://evil.test/buy now.\n"


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


@pytest.fixture
def listed() -> Any:
    backend = StaticBackend()
    for ip in (PARTNER, OTHER):
        backend.add(".".join(reversed(ip.split("."))) + ".bl.test", "A", ["127.0.0.2"])
    backend.add("evil.test.uri.test", "A", ["127.0.0.2"])
    with resolving_with(Resolver(backend=backend, timeout=1.0)):
        yield backend


def _doc(action: str, **more: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"]["dnsbl"] = {"mode": "on", "zones": [{"zone": "bl.test", "weight": 5, "action": action}], **more}
    doc["settings"]["uribl"] = {"mode": "on", "zones": [{"zone": "uri.test", "weight": 5, "action": "refuse"}]}
    doc["lists"] = [{"list": "allow", "kind": "ip", "value": PARTNER},
                    {"list": "allow", "kind": "recipient", "value": "postmaster@example.com"}]
    return doc


@pytest.mark.parametrize("action", ["refuse", "quarantine"])
def test_an_allow_listed_client_is_not_judged_by_a_dnsbl(listed: Any, store: MemoryStore, action: str) -> None:
    gw, q, _ = make_gateway(_doc(action))
    _ctx, rc = run(gw, "alice@outside.test", "bob@example.com", ip=PARTNER)
    assert rc == Milter.ACCEPT and not q.items
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com", ip=OTHER)  # (not allowed: judged)
    assert (rc, ctx._reply[:1] if rc == Milter.REJECT else None) in ((Milter.REJECT, ("554",)), (Milter.DISCARD, None))


def test_a_listing_counts_once_whatever_the_number_of_recipients(listed: Any, store: MemoryStore) -> None:
    """(Judged per recipient, a zone's symbols were added once more for each recipient: 3
    points became 9 with two recipients, and a script on the score quarantined the message.)"""
    doc = _doc("score")
    doc["settings"]["scoring"] = {"mode": "on", "layers": ["dnsbl"], "fitted_scores": False,
                                  "quarantine_score": 50, "reject_score": 60}
    gw, _, sink = make_gateway(doc)
    for rcpts in (("bob@example.com",), ("bob@example.com", "carol@example.com")):
        _ctx, rc = run(gw, "alice@outside.test", *rcpts, ip=OTHER)
        assert rc == Milter.ACCEPT
        rec = sink.records[-1]
        assert rec["score"] == 5.0 and [s["name"] for s in rec["symbols"]].count("DNSBL_BL_TEST") == 1, rec


def test_a_quarantining_zone_still_lets_greylisting_defer(listed: Any, store: MemoryStore) -> None:
    """(Judged per recipient, a zone's quarantine was final at RCPT: a listed client's first
    attempt was taken into the quarantine instead of being greylisted.)"""
    from gateway_milter.context import ConnectionInfo

    doc = _doc("quarantine")
    doc["settings"]["greylist"] = {"mode": "on", "delay": 300}
    gw, _, _ = make_gateway(doc)
    ctx = gw.begin(ConnectionInfo(client_ip=OTHER, client_name="unknown", helo="mx.outside.test"))
    gw.mail(ctx, "alice@outside.test")
    d = gw.rcpt(ctx, "bob@example.com")
    assert d.reply is not None and d.reply.code == "451" and "Greylisted" in d.reply.text
    ctx.close()


def test_the_exemption_can_be_switched_off(listed: Any, store: MemoryStore) -> None:
    gw, _, _ = make_gateway(_doc("refuse", exempt_allowlisted=False))
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com", ip=PARTNER)
    assert rc == Milter.REJECT and ctx._reply[0] == "554"


def test_an_allow_listed_clients_links_are_not_judged_by_a_uribl(listed: Any, store: MemoryStore) -> None:
    gw, _, _ = make_gateway(_doc("score"))
    _ctx, rc = run(gw, "alice@outside.test", "bob@example.com", ip=PARTNER, msg=LINKED)
    assert rc == Milter.ACCEPT
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com", ip=OTHER, msg=LINKED)
    assert rc == Milter.REJECT and "links to a host listed by uri.test" in ctx._reply[2]
