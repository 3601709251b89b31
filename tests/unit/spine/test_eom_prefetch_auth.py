"""DKIM's key lookups and DMARC's policy lookups start when end of message begins, before the
policy asks any layer, so their answers arrive while the other end-of-message layers compute;
mail the layers exempt is not looked up in advance."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_milter.context import MessageContext
from gateway_milter.layers.dkim import DkimLayer
from gateway_milter.layers.dmarc import DmarcLayer
from gateway_milter.net.resolver import StaticBackend
from tests.unit.antispam.helpers import msg, store  # noqa: F401 - fixture
from tests.unit.dns_helpers import RecordingResolver, resolving_with
from tests.unit.spine.conftest import BASE_POLICY, make_gateway, note_check, run_to_eom

pytestmark = pytest.mark.usefixtures("store")  # a fresh state store per test, not the one on disk

KEY = "sel._domainkey.signer.test"
SIGNATURE = ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=signer.test;\r\n"
             "\ts=sel; h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
             "\tb=dGVzdA==\r\n")


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    ev: list[str] = []
    note_check(monkeypatch, DkimLayer, ev, "check:dkim")
    note_check(monkeypatch, DmarcLayer, ev, "check:dmarc")
    with resolving_with(RecordingResolver(StaticBackend({}, delay=0.05), ev)):
        yield ev


def policy() -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"].update({"dkim": {"mode": "on"}, "dmarc": {"mode": "on"}, "spf": {"mode": "on"}})
    return doc


def run(auth: str = "") -> MessageContext:
    raw = msg("hello", headers=SIGNATURE).replace(b"alice@sender.test>", b"alice@mail.sender.test>", 1)
    ctx, _ = run_to_eom(make_gateway(policy())[0], raw, helo="mx.sub.sender.test", mail_from="alice@sender.test",
                        auth=auth)
    return ctx


def test_key_and_policy_lookups_start_before_any_layer_is_asked(events: list[str]) -> None:
    ctx = run()
    assert "check:dkim" in events and "check:dmarc" in events, events
    first_check = min(i for i, e in enumerate(events) if e.startswith("check:"))
    early = events[:first_check]
    # the key of the signature, the From domain's policy and its organisational domain's
    assert {f"dns:{KEY}", "dns:_dmarc.mail.sender.test", "dns:_dmarc.sender.test"} <= set(early), events
    res = ctx.layer("dkim")
    assert [s["d"] for s in res.fact("signatures")] == ["signer.test"]
    assert ctx.layer("dmarc").fact("from_domain") == "mail.sender.test"


def test_exempt_mail_is_not_looked_up_in_advance(events: list[str]) -> None:
    ctx = run(auth="alice")
    assert not any(e in events for e in (f"dns:{KEY}", "dns:_dmarc.mail.sender.test", "dns:_dmarc.sender.test")), events
    assert ctx.layer("dkim").fact("exempt") == "authenticated"
