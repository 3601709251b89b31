"""A layer's ``reject_code`` of 4xx (a soft refusal, as some admins set for a DNS blocklist)
defers: the layer's system script says ``tempfail`` with that code. Before, it said ``refuse``
with a 4xx code, which does not compile: the milter refused to load that policy version and
every later one (for every domain), saying so only in its log. Each distinct system script of
the global settings and of every domain is now compiled before a version is published."""

from __future__ import annotations

import copy
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve.policy import check_system_scripts, system_scripts
from tests.unit.spine.conftest import BASE_POLICY, make_gateway
from tests.unit.spine.test_milter_front import NO_NR_OPTS, run


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


def _doc(lists: dict[str, Any], domain: bool = False) -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    if domain:
        doc["domains"][0]["settings"] = {"lists": lists}
    else:
        doc["settings"]["lists"] = lists
    return doc


SOFT = {"reject_code": "450", "reject_enhanced": "4.7.1"}


@pytest.mark.parametrize("domain", [False, True])
def test_a_4xx_reject_code_defers_with_that_code(domain: bool) -> None:
    gw, _, _ = make_gateway(_doc(SOFT, domain))
    ctx, rc = run(gw, "x@spam.test", "bob@example.com")
    assert rc == Milter.TEMPFAIL
    assert ctx._reply[:2] == ("450", "4.7.1") and "sender is blocked" in ctx._reply[2]


def test_a_5xx_reject_code_still_refuses() -> None:
    gw, _, _ = make_gateway(_doc({"reject_code": "554", "reject_enhanced": "5.7.1"}))
    ctx, _rc = run(gw, "x@spam.test", "bob@example.com")
    assert ctx._reply[:2] == ("554", "5.7.1")


def test_the_system_scripts_of_every_domain_compile() -> None:
    snap = PolicySnapshot.from_document(_doc(SOFT, True))
    check_system_scripts(snap)  # raised for "refuse :code 450" before
    sources = [src for _l, _r, _n, src, _ln in system_scripts(snap, "example.com")]
    assert any('tempfail :code "450"' in src for src in sources)
    assert not any('refuse :code "450"' in src for src in sources)
