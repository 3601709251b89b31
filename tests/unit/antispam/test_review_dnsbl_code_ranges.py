"""A ``codes`` range written high-to-low (``127.0.0.11-127.0.0.2``) was accepted when saved
and then matched no answer at all: the zone silently never listed anyone. It is refused when
saved, as other malformed zone fields are."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.dnslists import parse_zones
from gateway_milter.layers.base import SettingsError


def test_it_refuses_a_reversed_code_range() -> None:
    with pytest.raises(SettingsError) as e:
        parse_zones(({"zone": "zen.example", "codes": ["127.0.0.11-127.0.0.2"]},), "zones", "DNSBL_")
    assert e.value.path == "zones[0].codes[0]"


def test_a_range_in_order_still_lists() -> None:
    z = parse_zones(({"zone": "zen.example", "codes": ["127.0.0.2-127.0.0.11"]},), "zones", "DNSBL_")[0]
    assert z.accepts("127.0.0.5") and not z.accepts("127.0.0.12")


@pytest.mark.parametrize("weight", ["nan", "inf", "-inf", "1e999", float("nan"), float("inf")])
@pytest.mark.parametrize("layer", ["dnsbl", "uribl"])
def test_it_refuses_a_weight_that_is_not_finite(weight: object, layer: str) -> None:
    # NaN made every total NaN: no threshold met, the X-Spam-* headers failed and the message
    # was tempfailed on every retry; inf rejected whatever the zone listed
    from gateway_milter.policy.snapshot import PolicySnapshot

    with pytest.raises(SettingsError) as e:
        parse_zones(({"zone": "zen.example", "weight": weight},), "zones", "DNSBL_")
    assert e.value.path == "zones[0].weight" and "finite" in str(e.value)
    with pytest.raises(Exception, match="finite"):
        PolicySnapshot.from_document({"settings": {layer: {"zones": [{"zone": "bl.example", "weight": weight}]}}})
