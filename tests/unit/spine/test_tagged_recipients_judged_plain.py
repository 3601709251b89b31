"""A recipient with a BATV tag (``prvs=TAG=closed@example.com``, forged or not) is judged by its
plain address, to which it is delivered: the recipient block list, the recipient's own lists
and the allow-list exemptions apply to it. Before, a tag escaped the block list and the
recipient's own block entry, and the mail was delivered to the blocked address."""

from __future__ import annotations

import copy

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.store.memory import MemoryStore
from tests.unit.spine.conftest import BASE_POLICY, make_gateway


def _answers(doc: dict, sender: str, *rcpts: str) -> dict[str, object]:
    gw, _, _ = make_gateway(doc)
    ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.5", client_name="unknown", helo="mx.outside.test"))
    gw.mail(ctx, sender)
    out = {r: gw.rcpt(ctx, r).reply for r in rcpts}
    ctx.close()
    return out


@pytest.mark.parametrize("tag", ["prvs=1000000000=", "prvs=0123abcdef=", "msprvs1=0123abcdef="])
def test_a_tagged_blocked_recipient_is_refused(store: MemoryStore, tag: str) -> None:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"]["backscatter"] = {"mode": "on"}
    got = _answers(doc, "alice@outside.test", f"{tag}closed@example.com", "closed@example.com")
    assert all(r is not None and r.code == "550" and "recipient is blocked" in r.text for r in got.values()), got


def test_a_recipients_own_block_entry_holds_for_a_tagged_address(store: MemoryStore) -> None:
    doc = copy.deepcopy(BASE_POLICY)
    doc["lists"] = doc["lists"] + [{"list": "block", "kind": "sender", "value": "alice@outside.test",
                                    "recipient": "dave@example.com"}]
    got = _answers(doc, "alice@outside.test", "prvs=1000000000=dave@example.com", "dave@example.com",
                   "bob@example.com")
    assert [r is not None and "the recipient blocks this sender" in r.text for r in got.values()] == [True, True, False]


def test_a_refused_recipient_leaves_the_direction_as_it_was(store: MemoryStore) -> None:
    """Local mail from a trusted client with a refused outside recipient stays local: the
    refused one made it "outbound" (exempt from scoring, BATV- and DKIM-signed)."""
    from gateway_milter.verdict import Direction

    doc = copy.deepcopy(BASE_POLICY)
    doc["lists"] = doc["lists"] + [{"list": "block", "kind": "recipient", "value": "*@rival.test"}]
    gw, _, _ = make_gateway(doc)
    ctx = gw.begin(ConnectionInfo(client_ip="10.1.2.3", client_name="unknown", helo="pc.example.com"))
    gw.mail(ctx, "alice@example.com")
    assert gw.rcpt(ctx, "bob@example.com").reply is None
    local = ctx.direction
    assert gw.rcpt(ctx, "x@rival.test").reply is not None
    assert ctx.direction is local and local is not Direction.OUTBOUND
    ctx.close()
