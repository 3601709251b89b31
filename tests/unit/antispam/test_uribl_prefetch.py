"""URIBL lookups start when end of message begins (the body's links are known), so their answers
arrive while Bayes and the heuristic rules compute; the layer's check then collects them. The
verdicts and the lookups made (max_lookups, the zones' kinds) are those of a check that starts
its own lookups."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.context import MessageContext
from gateway_milter.layers.bayes import BayesLayer
from gateway_milter.layers.rules import HeuristicRulesLayer
from gateway_milter.layers.uribl import UriblLayer
from gateway_milter.net.resolver import StaticBackend, set_resolver
from gateway_milter.pipeline.transaction import EomDecision, Gateway
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg, write_rules
from tests.unit.dns_helpers import RecordingResolver, resolving_with
from tests.unit.spine.conftest import BASE_POLICY, make_gateway, note_check, run_to_eom

DNS_DELAY = 0.2
BAYES_TIME = 0.4  # longer than a lookup: with the lookups started first, URIBL waits for nothing


@pytest.fixture
def events(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    ev: list[str] = []
    backend = StaticBackend({("evil.test.uri.test", "A"): ["127.0.0.2"],
                             ("2.0.0.127.uri.test", "A"): ["127.0.0.4"]}, delay=DNS_DELAY)
    note_check(monkeypatch, BayesLayer, ev, "bayes", takes=BAYES_TIME)
    note_check(monkeypatch, HeuristicRulesLayer, ev, "rules")
    with resolving_with(RecordingResolver(backend, ev)):
        yield ev


def policy(tmp: Path, **uribl: Any) -> dict[str, Any]:
    rules = write_rules(tmp, "body LOCAL_CHEAP /cheap pills/i\nscore LOCAL_CHEAP 2.5\n")
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"].update({
        "uribl": {"mode": "on", "zones": [{"zone": "uri.test", "weight": 4}], **uribl},
        "rules": {"mode": "on", "include_default": False, "rule_dirs": [str(rules)]},
        "bayes": {"mode": "on"},
        "scoring": {"mode": "on"},
    })
    return doc


BODY = ("cheap pills at http://www.evil.test/buy and http://good.test/ or http://0x7f000002/ "
        "(also http://example.com/ of our own)")


def run(gw: Gateway, body: str = BODY, auth: str = "") -> tuple[MessageContext, EomDecision]:
    return run_to_eom(gw, msg("offer", body), helo="mx.outside.test", mail_from="alice@outside.test", auth=auth)


def uribl_lookups(events: list[str]) -> list[int]:
    return [i for i, e in enumerate(events) if e.endswith(".uri.test")]


def test_it_starts_the_uribl_lookups_before_bayes_and_the_rules_run(events: list[str], tmp_path: Path) -> None:
    gw, _, _ = make_gateway(policy(tmp_path))
    ctx, dec = run(gw)
    first_content_layer = min(events.index("bayes"), events.index("rules"))
    started = uribl_lookups(events)
    assert len(started) == 3 and max(started) < first_content_layer, events
    res = ctx.layer("uribl")
    assert res.fact("targets") == ["evil.test", "good.test", "127.0.0.2"]
    assert res.has("URIBL_URI_TEST") and set(res.fact("listed")["uri.test"]) == {"evil.test", "127.0.0.2"}
    # the answers came while Bayes computed: the layer's check found them
    (ms,) = [t.ms for t in ctx.trace if t.source == "uribl" and t.event == "checked"]
    assert ms < DNS_DELAY * 1000 / 2
    assert dec.action.value in ("accept", "discard")


def test_the_verdict_is_that_of_a_check_starting_its_own_lookups(events: list[str], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, dec = run(make_gateway(policy(tmp_path))[0])
    early = (dec.action, ctx.score, sorted((s.name, s.score) for s in ctx.symbols), ctx.layer("uribl").facts)
    monkeypatch.setattr(UriblLayer, "prefetch", lambda self, ctx, settings: None)
    assert isinstance(set_resolver(None), RecordingResolver)
    backend = StaticBackend({("evil.test.uri.test", "A"): ["127.0.0.2"], ("2.0.0.127.uri.test", "A"): ["127.0.0.4"]})
    set_resolver(RecordingResolver(backend, []))
    ctx2, dec2 = run(make_gateway(policy(tmp_path))[0])
    late = (dec2.action, ctx2.score, sorted((s.name, s.score) for s in ctx2.symbols), ctx2.layer("uribl").facts)
    assert early == late
    assert any(name == "URIBL_URI_TEST" for name, _ in early[2])


def test_the_lookup_limit_and_zone_kinds_are_kept(events: list[str], tmp_path: Path) -> None:
    doc = policy(tmp_path, max_lookups=20, zones=[{"zone": "uri.test", "kind": "domain"},
                                                  {"zone": "ip.test", "kind": "ip"}])
    body = " ".join(f"http://host{i}.site{i}.test/" for i in range(30)) + " http://192.0.2.1/"
    ctx, _ = run(make_gateway(doc)[0], body)
    names = [e[4:] for e in events if e.endswith((".uri.test", ".ip.test"))]
    assert names == [f"site{i}.test.uri.test" for i in range(20)]  # 20 domains, the IP is the 21st
    assert ctx.layer("uribl").fact("targets") == [f"site{i}.test" for i in range(20)]
    from gateway_milter.net.resolver import get_resolver

    backend = get_resolver().backend
    assert isinstance(backend, StaticBackend)
    assert sorted(n for n, _ in backend.calls if n.endswith(".uri.test")) == sorted(names)  # each once


def test_an_ip_link_within_the_limit_goes_to_the_ip_zone_only(events: list[str], tmp_path: Path) -> None:
    doc = policy(tmp_path, zones=[{"zone": "uri.test", "kind": "domain"}, {"zone": "ip.test", "kind": "ip"}])
    run(make_gateway(doc)[0], "see http://0x7f000002/ and http://a.site.test/")
    names = sorted(e[4:] for e in events if e.endswith((".uri.test", ".ip.test")))
    assert names == ["2.0.0.127.ip.test", "site.test.uri.test"]


def test_mail_the_scores_skip_is_not_looked_up_in_advance(events: list[str], tmp_path: Path) -> None:
    """Authenticated (and outbound, allow-listed) mail is exempt from scoring: a URIBL of score
    zones only is never asked, so its links are not sent to the list's servers either."""
    ctx, _ = run(make_gateway(policy(tmp_path))[0], auth="alice")
    assert uribl_lookups(events) == []
    assert ctx.runner is not None and ctx.runner.peek("uribl") is None


def test_a_refusing_zone_is_looked_up_in_advance_also_for_exempt_mail(events: list[str], tmp_path: Path) -> None:
    doc = policy(tmp_path, zones=[{"zone": "uri.test", "action": "refuse"}])
    ctx, dec = run(make_gateway(doc)[0], auth="alice")
    assert dec.action.value == "reject"
    assert len(uribl_lookups(events)) == 3


def test_the_scoring_layer_runs_the_rules_before_it_waits_for_uribl(events: list[str], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The scored layers' order lists uribl before rules; the scoring layer asks the layers that
    only compute first, so the URIBL answers arrive while the rules run."""
    note_check(monkeypatch, UriblLayer, events, "uribl")
    ctx, _ = run(make_gateway(policy(tmp_path))[0])
    assert events.index("bayes") < events.index("rules") < events.index("uribl"), events
    assert ctx.layer("uribl").has("URIBL_URI_TEST")
