"""The openspf RFC 7208 test suite, run through our SPF code and resolver path.

The suite's zone data is fed to the resolver through its test seam (StaticBackend), the same
code path real DNS answers take (cache, budget, temporary errors)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway_milter.layers.spf import check_host
from gateway_milter.net.resolver import Resolver, StaticBackend
from tests.services import shared_path

SUITE = shared_path("conformance", "spf", "rfc7208-tests.yml")


def _zone(zonedata: dict[str, list[Any]]) -> StaticBackend:
    """The suite's driver rules: SPF records are copied to TXT unless the name has TXT
    records of its own; ``TXT: NONE`` means none; ``TIMEOUT`` times out the types that
    have no records."""
    be = StaticBackend()
    for name, rrs in zonedata.items():
        gen_txt: list[Any] = []
        has_txt = False
        timeout = False
        for rr in rrs:
            if rr == "TIMEOUT":
                timeout = True
                continue
            for t, v in rr.items():
                if t == "TXT":
                    has_txt = True
                if v == "NONE":
                    continue
                if t in ("TXT", "SPF"):
                    val = [x.encode("latin-1", "replace") if isinstance(x, str) else x
                           for x in (v if isinstance(v, list) else [v])]
                    if t == "SPF":
                        gen_txt.append(val)
                    else:
                        be.add(name, "TXT", [val])
                elif t == "MX":
                    be.add(name, "MX", [(v[0], v[1])])
                elif t in ("A", "AAAA", "PTR", "CNAME"):
                    be.add(name, t, [v] if not isinstance(v, list) else v)
        if not has_txt and gen_txt:
            be.add(name, "TXT", gen_txt)
        if timeout:  # types without records of their own time out
            for t in ("A", "AAAA", "TXT", "MX", "PTR", "CNAME"):
                if (name.lower(), t) not in be.records:
                    be.add(name, t, "TIMEOUT")
    return be


def _cases() -> list[Any]:
    if not SUITE.exists():
        return []
    out = []
    for scenario in yaml.safe_load_all(SUITE.read_text(encoding="utf-8")):
        if not scenario:
            continue
        for tname, t in scenario["tests"].items():
            out.append(pytest.param(scenario["zonedata"], t, id=tname))
    return out


CASES = _cases()


@pytest.mark.skipif(not SUITE.exists(), reason="../shared/conformance/spf not present")
@pytest.mark.parametrize(("zonedata", "case"), CASES)
def test_it_passes_rfc7208_vector(zonedata: dict[str, Any], case: dict[str, Any]) -> None:
    res = Resolver(backend=_zone(zonedata), timeout=5.0)  # bounds waits only
    got = check_host(case["host"], case["mailfrom"], case["helo"], resolver=res, timeout=5)
    expected = case["result"] if isinstance(case["result"], list) else [case["result"]]
    assert got.result in expected, got.explanation


def test_it_has_the_whole_suite() -> None:
    if not SUITE.exists():
        pytest.skip("../shared/conformance/spf not present")
    assert len(CASES) >= 200
