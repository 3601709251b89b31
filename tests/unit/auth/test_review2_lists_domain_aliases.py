"""A domain's list entries apply to mail for its aliases too, and an entry the policy file scopes
to an alias name (validation accepts it) applies to the domain. The entries were looked up under
the name as written: the recipient's own domain at RCPT (``old@alias.test`` missed a.test's
``old@*`` block) and the canonical name for the message (an entry scoped to ``alias.test`` never
matched anything)."""

from __future__ import annotations

import copy
from typing import Any

from gateway_milter.context import ConnectionInfo
from tests.unit.spine.conftest import BASE_POLICY, make_gateway


def rcpt(entry: dict[str, Any], address: str) -> str:
    doc = copy.deepcopy(BASE_POLICY)
    doc["domains"] = [{"name": "a.test", "aliases": ["alias.test"]}, {"name": "b.test"}]
    doc["lists"] = [entry]
    gw, _, _ = make_gateway(doc)
    ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.5", client_port=2525, client_name="unknown",
                                  helo="mx.bigcorp.example"))
    gw.mail(ctx, "ceo@bigcorp.example")
    return gw.rcpt(ctx, address).action


def test_a_domains_recipient_entry_applies_to_its_aliases() -> None:
    entry = {"list": "block", "kind": "recipient", "value": "old@*", "domain": "a.test"}
    assert rcpt(entry, "old@a.test") == "reject"
    assert rcpt(entry, "old@alias.test") == "reject"
    assert rcpt(entry, "old@b.test") == "continue"


def test_an_entry_scoped_to_an_alias_name_applies_to_the_domain() -> None:
    entry = {"list": "block", "kind": "sender", "value": "*@bigcorp.example", "domain": "alias.test"}
    assert rcpt(entry, "x@alias.test") == "reject"
    assert rcpt(entry, "x@a.test") == "reject"
    assert rcpt(entry, "x@b.test") == "continue"


def test_a_domains_sender_entry_applies_to_mail_for_its_aliases() -> None:
    entry = {"list": "block", "kind": "sender", "value": "*@bigcorp.example", "domain": "a.test"}
    assert rcpt(entry, "x@alias.test") == "reject"
