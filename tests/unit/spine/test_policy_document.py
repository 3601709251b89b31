from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from gateway_milter.layers.base import SettingsError
from gateway_milter.policy.lists import CompiledLists, validate_entry
from gateway_milter.policy.snapshot import PolicySnapshot, validate_document
from tests.unit.spine.conftest import BASE_POLICY


@pytest.mark.parametrize(
    ("doc", "path", "words"),
    [
        ({"lists": [{"list": "block", "kind": "ip", "value": "300.1.1.1"}]}, "lists[0].value", "not an IP"),
        ({"lists": [{"list": "deny", "kind": "ip", "value": "1.2.3.4"}]}, "lists[0].list", "allow or block"),
        ({"settings": {"lists": {"block_action": "bounce"}}}, "settings.lists.block_action", "refuse or quarantine"),
        ({"settings": {"size": {"max_bytes": "big"}}}, "settings.size.max_bytes", "whole number"),
        ({"settings": {"nosuchlayer": {}}}, "settings.nosuchlayer", "unknown layer"),
        ({"settings": {"lists": {"colour": "red"}}}, "settings.lists.colour", "unknown setting"),
        ({"domains": [{"name": "exa mple.com"}]}, "domains[0].name", "not a valid domain"),
        ({"domains": ["a.example", "a.example"]}, "domains[1].name", "listed twice"),
        ({"trusted_networks": ["10.0.0.0/33"]}, "trusted_networks[0]", "not an IP network"),
        ({"lists": [{"list": "block", "kind": "sender", "value": "x@y.test", "domain": "nope.test"}]},
         "lists[0].domain", "not a configured domain"),
        ({"frobnicate": 1}, "frobnicate", "unknown section"),
        ({"format": 9}, "format", "unsupported format"),
        ({"settings": {"lists": {"reject_code": "250"}}}, "settings.lists.reject_code", "4xx or 5xx"),
    ],
)
def test_it_names_the_bad_field(doc: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(SettingsError) as e:
        validate_document(doc)
    assert e.value.path == path
    assert words in str(e.value)


def test_it_normalises_entries() -> None:
    out = validate_document({"lists": [{"list": "block", "kind": "ip", "value": "2001:DB8::/32"},
                                       {"list": "allow", "kind": "sender", "value": "Boss@Example.COM"}],
                             "domains": ["Example.COM."]})
    assert out["lists"][0]["value"] == "2001:db8::/32"
    assert out["lists"][1]["value"] == "boss@example.com"
    assert out["domains"][0]["name"] == "example.com"


def test_it_merges_domain_settings_over_global_ones() -> None:
    snap = PolicySnapshot.from_document(BASE_POLICY)
    assert snap.settings_for("lists", None).block_action == "refuse"
    assert snap.settings_for("lists", "other.example").block_action == "quarantine"
    assert snap.settings_for("lists", "unknown.test").block_action == "refuse"
    assert snap.policy_group("example.com") == "global"
    assert snap.policy_group("other.example") == "domain:other.example"


def test_it_matches_wildcards_cidr_and_scopes() -> None:
    entries = [validate_entry(e, "x") for e in [
        {"list": "block", "kind": "sender", "value": "*@*.spam.test"},
        {"list": "block", "kind": "sender", "value": "boss@example.com", "domain": "example.com"},
        {"list": "block", "kind": "sender", "value": "@bulk.test"},
        {"list": "block", "kind": "ip", "value": "2001:db8:bad::/48"},
        {"list": "block", "kind": "host", "value": "*.dyn.test"},
        {"list": "block", "kind": "recipient", "value": "old?@example.com"},
    ]]
    lists = CompiledLists(entries)
    assert lists.match_address("block", "sender", "<x@mail.spam.test>", None)
    assert not lists.match_address("block", "sender", "x@spam.test", None)
    assert lists.match_address("block", "sender", "Boss@Example.com", "example.com")
    assert not lists.match_address("block", "sender", "boss@example.com", None)  # domain-scoped entry
    assert lists.match_address("block", "sender", "anyone@bulk.test", None)
    assert lists.match_ip("block", ipaddress.ip_address("2001:db8:bad::1"), None)
    assert not lists.match_ip("block", ipaddress.ip_address("2001:db8:bad0::1"), None)
    assert not lists.match_ip("block", ipaddress.ip_address("192.0.2.1"), None)
    assert lists.match_host("block", "pool-1.dyn.test.", None)
    assert not lists.match_host("block", "unknown", None)
    assert lists.match_address("block", "recipient", "old1@example.com", None)
    assert not lists.match_address("block", "recipient", "old12@example.com", None)


def test_it_reorders_the_system_rules_by_layer_order() -> None:
    doc = {"gateway": {"layer_order": ["size", "relay"]}, "settings": {"antivirus": {"mode": "off"}}}
    order = [lid for lid, _ in PolicySnapshot.from_document(doc).system_rules(None)]
    assert order.index("size") < order.index("relay") < order.index("lists")
    default = [lid for lid, _ in PolicySnapshot.from_document({}).system_rules(None)]
    assert default.index("lists") < default.index("size")
    with pytest.raises(SettingsError) as e:
        validate_document({"gateway": {"layer_order": ["size", "nope"]}})
    assert e.value.path == "gateway.layer_order[1]"


def test_it_exempts_the_message_when_every_recipient_allows_the_sender() -> None:
    from gateway_milter.context import ConnectionInfo
    from tests.unit.spine.conftest import make_gateway

    # (an address alone, nothing vouching for the sender: lists.verify_senders off here)
    doc = {"domains": ["example.com"], "settings": {"antivirus": {"mode": "off"}, "lists": {"verify_senders": False}},
           "lists": [{"list": "allow", "kind": "sender", "value": "*@partner.test", "recipient": "bob@example.com"}],
           "users": [{"addresses": ["ann@example.com"], "disable_antispam": True}]}
    for rcpts, exempt in ((["bob@example.com"], True), (["bob@example.com", "ann@example.com"], True),
                          (["bob@example.com", "carl@example.com"], False)):
        gw, _, _ = make_gateway(doc)
        ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.9"))
        gw.mail(ctx, "x@partner.test")
        for r in rcpts:
            gw.rcpt(ctx, r)
        ctx.add_header("From", "x@partner.test")
        ctx.body.write(b"hi\r\n")
        gw.eom(ctx)
        assert bool(ctx.facts.get("allowlisted")) is exempt, rcpts
    with pytest.raises(SettingsError) as e:
        validate_document({"lists": [{"list": "allow", "kind": "ip", "value": "1.2.3.4", "recipient": "a@b.test"}]})
    assert e.value.path == "lists[0].recipient"
