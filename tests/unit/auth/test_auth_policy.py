"""The authentication layers' settings compile into the Sieve system policy and decide."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_milter.net import resolver as r
from gateway_milter.policy.evaluate import engine_for
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Action
from tests.unit.auth.auth_helpers import make_ctx, message

NO_AV = {"antivirus": {"mode": "off"}}  # no clamd in unit tests
AUTH_LAYERS = ("spf", "senderid", "dkim", "arc", "dmarc", "rdns", "callback", "fromscreen")


@pytest.fixture()
def zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[r.StaticBackend]:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    be = r.StaticBackend({("example.test", "TXT"): ["v=spf1 ip4:192.0.2.0/28 -all"],
                          ("_dmarc.example.test", "TXT"): ["v=DMARC1; p=reject"]})
    prev = r.set_resolver(r.Resolver(backend=be, timeout=5.0))  # generous: it only bounds waits, which a loaded machine stretches
    yield be
    r.set_resolver(prev)


def test_it_compiles_every_action_of_every_auth_layer_into_system_scripts() -> None:
    settings = {
        "spf": {"fail_action": "refuse", "softfail_action": "quarantine", "permerror_action": "tempfail"},
        "senderid": {"mode": "on", "fail_action": "refuse"},
        "dkim": {"invalid_action": "quarantine"},
        "arc": {"fail_action": "refuse"},
        "dmarc": {"reject_handling": "quarantine"},
        "rdns": {"rdns_none_action": "refuse", "helo_not_fqdn_action": "quarantine"},
        "callback": {"mode": "on", "fail_action": "refuse"},
        "fromscreen": {"lookalike_action": "quarantine", "vip_action": "refuse"},
    }
    snap = PolicySnapshot.from_document({"domains": ["local.test"], "settings": settings})
    rules = snap.system_rules(None)
    assert {lid for lid, _ in rules} >= set(AUTH_LAYERS)
    engine_for(snap)  # compiles every system script; raises on a bad one


def test_it_refuses_a_dmarc_spoof_through_the_policy_engine(zone: r.StaticBackend) -> None:
    ctx = make_ctx(message(), ip="203.0.113.9", doc={"domains": ["local.test"], "settings": NO_AV})
    out = engine_for(ctx.policy).message(ctx)
    assert out.action is Action.REJECT and out.reply is not None and out.reply.code == "550"
    assert "DMARC" in out.reply.text


def test_it_refuses_spf_fail_already_at_the_envelope_when_configured(zone: r.StaticBackend) -> None:
    ctx = make_ctx(ip="203.0.113.9", doc={"domains": ["local.test"], "settings": {"spf": {"fail_action": "refuse"}}})
    out = engine_for(ctx.policy).envelope(ctx)
    assert out is not None and out.action is Action.REJECT and out.reply is not None
    assert out.reply.enhanced == "5.7.23"
    passing = make_ctx(ip="192.0.2.3", doc={"domains": ["local.test"], "settings": {"spf": {"fail_action": "refuse"}}})
    assert engine_for(passing.policy).envelope(passing) is None


def test_it_only_scores_in_score_mode(zone: r.StaticBackend) -> None:
    # scoring off: the DMARC rule must not act by itself (with scoring on, the symbol's score
    # counts towards the thresholds, which is what score mode is for)
    doc = {"domains": ["local.test"], "settings": {"dmarc": {"mode": "score"}, "scoring": {"mode": "off"}, **NO_AV}}
    ctx = make_ctx(message(), ip="203.0.113.9", doc=doc)
    ctx.layer("dmarc")  # e.g. asked for by the scoring layer: the symbol counts, no rule acts
    assert ctx.has_symbol("DMARC_FAIL_REJECT")
    out = engine_for(ctx.policy).message(ctx)
    assert out.action is Action.ACCEPT
