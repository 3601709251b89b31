"""DNS allowlists (negative weights, e.g. DNSWL): the documented masks take the trust levels
they say, and a negative weight with a refusing or quarantining action is refused when saved."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.dnslists import parse_zones
from gateway_milter.layers.base import SettingsError


def test_the_documented_dnswl_masks_take_their_trust_levels() -> None:
    listed, trusted = parse_zones(({"zone": "list.dnswl.org", "symbol": "DNSWL_LISTED", "weight": -1, "mask": "0x03"},
                                   {"zone": "list.dnswl.org", "symbol": "DNSWL_TRUSTED", "weight": -3, "mask": "0x02"}),
                                  "zones", "DNSBL_")
    levels = {level: (listed.accepts(f"127.0.15.{level}"), trusted.accepts(f"127.0.15.{level}")) for level in range(4)}
    assert levels == {0: (False, False), 1: (True, False), 2: (True, True), 3: (True, True)}
    assert listed.weight + trusted.weight == -4
    assert not listed.accepts("127.0.0.255")  # DNSWL's "query refused"


@pytest.mark.parametrize("action", ["refuse", "quarantine"])
def test_a_negative_weight_must_only_score(action: str) -> None:
    with pytest.raises(SettingsError) as e:
        parse_zones(({"zone": "zen.example"}, {"zone": "list.dnswl.org", "weight": -2, "action": action}),
                    "zones", "DNSBL_")
    assert e.value.path == "zones[1].action" and "must have action score" in e.value.message
