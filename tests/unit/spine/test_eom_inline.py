"""End of message runs inline (no thread hand-off) only when every layer the policy turns on is
local CPU work; otherwise on the budgeted stage pool."""

from __future__ import annotations

import copy

import pytest

from gateway_milter import layers
from gateway_milter.context import ConnectionInfo
from gateway_milter.pipeline import transaction
from tests.unit.spine.conftest import BASE_POLICY, make_gateway


def ctx_for(doc: dict[str, object]) -> tuple[transaction.Gateway, object]:
    gw, _, _ = make_gateway(doc)
    return gw, gw.begin(ConnectionInfo(client_ip="198.51.100.5", client_port=2525, client_name="unknown"))


def test_a_policy_of_local_layers_runs_end_of_message_inline() -> None:
    gw, ctx = ctx_for(BASE_POLICY)
    assert all(layers.get(lid).local for lid in ("lists", "size", "direction", "relay"))
    assert gw.eom_may_block(ctx) is False  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["global", "domain"])
def test_a_network_layer_on_anywhere_sends_end_of_message_to_the_stage_pool(where: str) -> None:
    doc = copy.deepcopy(BASE_POLICY)
    if where == "global":
        doc["settings"]["dnsbl"] = {"mode": "on", "zones": [{"zone": "bl.test"}]}  # type: ignore[index]
    else:
        doc["domains"][0]["settings"] = {"spf": {"mode": "on"}}  # type: ignore[index]
    gw, ctx = ctx_for(doc)
    assert gw.eom_may_block(ctx) is True  # type: ignore[arg-type]


def test_a_layer_made_to_hang_counts_as_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transaction, "FAULT_HANG", frozenset({"size"}))
    gw, ctx = ctx_for(BASE_POLICY)
    assert gw.eom_may_block(ctx) is True  # type: ignore[arg-type]
