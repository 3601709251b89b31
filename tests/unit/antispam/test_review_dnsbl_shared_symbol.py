"""Two entries of one zone with different codes and actions (Spamhaus ZEN: SBL/XBL answers
refused, PBL answers only scored) got the same default symbol, DNSBL_<ZONE>: the refusing
entry's system rule, keyed on that symbol, then refused clients that only the scoring entry
listed. Such a configuration is refused when saved, naming the symbol to set."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.dnslists import parse_zones
from gateway_milter.layers.base import SettingsError
from gateway_milter.net.resolver import StaticBackend
from gateway_milter.policy.evaluate import engine_for
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Action, Stage
from tests.unit.antispam.helpers import make_ctx, msg

SBL = {"zone": "zen.example", "weight": 6, "action": "refuse", "codes": ["127.0.0.2-127.0.0.9"]}
PBL = {"zone": "zen.example", "weight": 1, "codes": ["127.0.0.10-127.0.0.11"]}


def test_it_refuses_entries_that_share_a_symbol_but_not_an_action() -> None:
    with pytest.raises(SettingsError) as e:
        parse_zones((SBL, PBL), "zones", "DNSBL_")
    assert e.value.path == "zones[1].symbol"


def test_a_scoring_entry_with_its_own_symbol_never_refuses(dns: StaticBackend) -> None:
    dns.add("7.113.0.203.zen.example", "A", ["127.0.0.10"])  # a PBL listing only
    pol = PolicySnapshot.from_document({"settings": {"dnsbl": {"zones": [SBL, {**PBL, "symbol": "DNSBL_PBL"}]}},
                                        "domains": ["example.com"]})
    ctx = make_ctx(msg(), pol, stage=Stage.RCPT)
    assert ctx.layer("dnsbl").has("DNSBL_PBL")
    outcome = engine_for(pol).envelope(ctx)
    assert outcome is None or outcome.action is not Action.REJECT


def test_entries_that_share_a_symbol_and_an_action_are_still_allowed() -> None:
    zones = parse_zones(({**SBL, "action": "score"}, PBL), "zones", "DNSBL_")
    assert zones[0].symbol == zones[1].symbol == "DNSBL_ZEN_EXAMPLE"


def test_the_listed_fact_keeps_every_entrys_codes(dns: StaticBackend) -> None:
    # the fact was keyed by zone and the later entry's codes replaced the earlier's: an SBL and
    # a PBL answer read as the PBL answer alone in the message log
    dns.add("7.113.0.203.zen.example", "A", ["127.0.0.2", "127.0.0.10"])
    pol = PolicySnapshot.from_document({"settings": {"dnsbl": {"zones": [{**SBL, "action": "score"},
                                                                         {**PBL, "symbol": "DNSBL_PBL"}]}},
                                        "domains": ["example.com"]})
    res = make_ctx(msg(), pol, stage=Stage.RCPT).layer("dnsbl")
    assert res.has("DNSBL_ZEN_EXAMPLE") and res.has("DNSBL_PBL")
    assert res.fact("listed") == {"zen.example": ["127.0.0.2", "127.0.0.10"]}
