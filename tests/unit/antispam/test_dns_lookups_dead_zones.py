"""A zone that does not answer costs only its own lookups:

- a lookup a caller waits for but no worker has started yet (the resolver's pool busy with a
  dead zone's lookups) is run by the caller, not reported timed out without ever being sent:
  a healthy zone's listing read "unknown" and the listed client was accepted;
- the DNSBL and URIBL layers take each answer from the lookup they started, so a lookup that
  timed out is not sent again and waited for once more, zone after zone or link after link
  (4 dead zones held RCPT for 4 time-outs; 20 links to a dead zone spent the message's whole
  DNS budget, and the layers asked after it got "budget exhausted")."""

from __future__ import annotations

import threading
from collections import Counter

from gateway_milter.net.resolver import TIMEOUT, DnsAnswer, Resolver, StaticBackend
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg, policy
from tests.unit.dns_helpers import resolving_with


class DeadZones(StaticBackend):
    """Names under ``dead.test`` (and ``deadN.test``) never answer: each lookup of one takes
    the whole time-out, or until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.sent: Counter[str] = Counter()

    def lookup(self, name: str, rdtype: str, timeout: float) -> DnsAnswer:
        self.sent[name] += 1
        if name.split(".")[-2].startswith("dead"):
            self.release.wait(timeout)
            return DnsAnswer(name, rdtype, TIMEOUT, error="timed out")
        return super().lookup(name, rdtype, timeout)


def test_a_queued_lookup_is_run_by_its_waiter() -> None:
    backend = DeadZones()
    backend.add("2.0.0.127.bl.test", "A", ["127.0.0.2"])
    r = Resolver(backend=backend, timeout=30.0, workers=2)
    try:
        for i in range(6):  # both workers busy with a dead zone, four lookups queued behind them
            r.prefetch(f"{i}.0.0.127.dead.test", "A")
        fut = r.prefetch("2.0.0.127.bl.test", "A")
        ans = r.wait(fut, "2.0.0.127.bl.test", "A")
        assert ans.status == "ok" and [str(a) for a in ans.records] == ["127.0.0.2"]
        assert backend.sent["2.0.0.127.bl.test"] == 1  # (run once: by the waiter, not again by a worker)
    finally:
        backend.release.set()
        r.close()


def test_a_timed_out_lookup_is_not_sent_again() -> None:
    backend = DeadZones()
    backend.release.set()  # (a dead zone's lookups time out at once)
    r = Resolver(backend=backend, timeout=1.0)
    fut = r.prefetch("x.dead.test", "A")
    assert fut.result(5).status == TIMEOUT
    assert r.wait(fut, "x.dead.test", "A").status == TIMEOUT
    assert backend.sent["x.dead.test"] == 1


def test_the_dnsbl_layer_asks_each_dead_zone_once_and_still_lists() -> None:
    backend = DeadZones()
    backend.release.set()
    backend.add("7.113.0.203.bl.test", "A", ["127.0.0.2"])
    zones = [{"zone": f"dead{i}.test", "weight": 1} for i in range(4)] + [{"zone": "bl.test", "weight": 3}]
    with resolving_with(Resolver(backend=backend, timeout=1.0)):
        ctx = make_ctx(msg(), policy({"dnsbl": {"zones": zones}}), stage=Stage.CONNECT)
        res = ctx.layer("dnsbl")
    assert res.has("DNSBL_BL_TEST")
    assert sorted(res.fact("unknown")) == [f"dead{i}.test" for i in range(4)]
    assert {n: c for n, c in backend.sent.items() if "dead" in n} == {f"7.113.0.203.dead{i}.test": 1 for i in range(4)}


def test_the_uribl_layer_asks_each_link_of_a_dead_zone_once() -> None:
    backend = DeadZones()
    backend.release.set()
    backend.add("evil.test.uri.test", "A", ["127.0.0.2"])
    links = " ".join(f"http://site{i}.test/x" for i in range(10)) + " http://evil.test/buy"
    zones = [{"zone": "dead.test", "weight": 1}, {"zone": "uri.test", "weight": 4}]
    with resolving_with(Resolver(backend=backend, timeout=1.0)):
        ctx = make_ctx(msg("links", links), policy({"uribl": {"zones": zones}}))
        res = ctx.layer("uribl")
    assert res.has("URIBL_URI_TEST")
    dead = {n: c for n, c in backend.sent.items() if n.endswith(".dead.test")}
    assert len(dead) == 11 and set(dead.values()) == {1}, dead
