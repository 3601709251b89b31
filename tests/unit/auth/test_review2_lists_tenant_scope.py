"""A domain's own list entries judge mail for that domain only. The message-level entries
(sender, client host, client IP) are judged once per message with the message's domain (its
first local recipient), and domains with list entries of their own shared the global policy
group: a recipient of another tenant was accepted into the same transaction. So tenant A's
block entry refused tenant B's mail when A's recipient came first, and missed A's own mail when
B's came first (an allow entry likewise exempted B's recipients from the spam layers)."""

from __future__ import annotations

import copy
from typing import Any

from gateway_milter.context import ConnectionInfo
from tests.unit.spine.conftest import BASE_POLICY, make_gateway


def doc(kind: str = "sender", value: str = "*@bigcorp.example") -> dict[str, Any]:
    d = copy.deepcopy(BASE_POLICY)
    d["domains"] = [{"name": "a.test"}, {"name": "b.test"}, {"name": "c.test"}]
    d["lists"] = [{"list": "block", "kind": kind, "value": value, "domain": "a.test"}]
    return d


def conn() -> ConnectionInfo:
    return ConnectionInfo(client_ip="198.51.100.5", client_port=2525, client_name="unknown", helo="mx.bigcorp.example")


def rcpts(d: dict[str, Any], *addresses: str) -> list[str]:
    gw, _, _ = make_gateway(d)
    ctx = gw.begin(conn())
    gw.mail(ctx, "ceo@bigcorp.example")
    return [gw.rcpt(ctx, a).action for a in addresses]


def test_a_domains_block_entry_does_not_refuse_another_tenants_recipient() -> None:
    # b.test's recipient is sent again in its own transaction (452), where a.test's entry does not apply
    assert rcpts(doc(), "x@a.test", "y@b.test") == ["reject", "tempfail"]
    assert rcpts(doc(), "y@b.test") == ["continue"]


def test_a_domains_block_entry_is_not_missed_when_another_tenant_comes_first() -> None:
    assert rcpts(doc(), "y@b.test", "x@a.test") == ["continue", "tempfail"]
    assert rcpts(doc(), "x@a.test") == ["reject"]


def test_an_ip_entry_of_a_domain_is_scoped_too() -> None:
    assert rcpts(doc("ip", "198.51.100.0/24"), "y@b.test", "x@a.test") == ["continue", "tempfail"]


def test_domains_without_own_entries_still_share_a_transaction() -> None:
    assert rcpts(doc(), "y@b.test", "z@c.test") == ["continue", "continue"]
