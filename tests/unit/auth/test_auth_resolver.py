"""The gateway resolver: cache, budget, temporary errors, prefetch, hostile answers."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from gateway_milter.net import resolver as r


def make(records: dict, **kw) -> tuple[r.Resolver, r.StaticBackend]:
    be = r.StaticBackend(records, **kw)
    return r.Resolver(backend=be, timeout=5.0), be  # bounds waits only: a loaded machine stretches them


def test_it_answers_and_caches_per_ttl() -> None:
    now = [1000.0]
    be = r.StaticBackend({("a.test", "A"): ["192.0.2.1"]}, ttl=30)
    res = r.Resolver(backend=be, clock=lambda: now[0])
    first = res.query_a("A.test.")
    assert first.ok and first.records == ("192.0.2.1",) and not first.from_cache
    assert res.query_a("a.test").from_cache
    assert len(be.calls) == 1
    now[0] += 31
    assert not res.query_a("a.test").from_cache
    assert len(be.calls) == 2


def test_it_reports_nxdomain_and_nodata_as_void() -> None:
    res, _ = make({("a.test", "A"): ["192.0.2.1"]})
    assert res.query_txt("a.test").status == r.NODATA
    assert res.query_txt("b.test").status == r.NXDOMAIN
    assert res.query_txt("b.test").empty


def test_it_never_caches_temporary_errors() -> None:
    res, be = make({("t.test", "TXT"): "TIMEOUT", ("s.test", "TXT"): "SERVFAIL"})
    for name, status in (("t.test", r.TIMEOUT), ("s.test", r.SERVFAIL)):
        a = res.query_txt(name)
        assert a.status == status and a.temporary and not a.ok
        res.query_txt(name)
    assert len(be.calls) == 4


def test_it_gives_timeout_when_the_message_budget_is_spent() -> None:
    res, be = make({("a.test", "A"): ["192.0.2.1"]})
    budget = r.DnsBudget(seconds=10, max_queries=1)
    assert res.query_a("a.test", budget).ok
    assert res.query_a("b.test", budget).status == r.TIMEOUT
    assert res.query_a("a.test", budget).ok  # cached answers cost nothing
    spent = r.DnsBudget(seconds=0)
    assert res.query_a("c.test", spent).status == r.TIMEOUT
    assert len(be.calls) == 1


def test_it_runs_prefetches_concurrently_and_shares_inflight_lookups() -> None:
    records = {(f"h{i}.test", "A"): [f"192.0.2.{i}"] for i in range(6)}
    res, be = make(records, delay=0.2)
    t0 = time.monotonic()
    futs = [res.prefetch(f"h{i}.test", "A") for i in range(6)]
    dup = res.prefetch("h0.test", "A")
    assert dup is futs[0]
    answers = [f.result() for f in futs]
    assert time.monotonic() - t0 < 1.0  # six 0.2 s lookups in parallel (1.2 s one after another)
    assert [a.records[0] for a in answers] == [f"192.0.2.{i}" for i in range(6)]
    assert res.query_a("h3.test").from_cache
    assert len(be.calls) == 6


def test_it_refuses_invalid_names_without_a_query() -> None:
    res, be = make({})
    assert res.query_txt("a" * 64 + ".test").status == r.INVALID
    assert res.query_txt("a..test").status == r.INVALID
    assert res.query_ptr("not-an-ip").status == r.INVALID
    assert be.calls == []
    with pytest.raises(ValueError):
        res.query("a.test", "AXFR")


def test_it_refuses_a_hostile_answer_with_too_many_records() -> None:
    res, _ = make({("big.test", "TXT"): [f"v{i}" for i in range(r.MAX_RECORDS + 1)]})
    a = res.query_txt("big.test")
    assert a.temporary and "hostile" in a.error


def test_it_turns_a_broken_backend_into_servfail() -> None:
    class Broken:
        def lookup(self, name: str, rdtype: str, timeout: float) -> r.DnsAnswer:
            raise OSError("socket gone")

    a = r.Resolver(backend=Broken()).query_a("a.test")
    assert a.status == r.SERVFAIL and "socket gone" in a.error


def test_it_follows_cnames_in_static_zone_data_and_stops_long_chains() -> None:
    recs = {(f"c{i}.test", "CNAME"): [f"c{i + 1}.test"] for i in range(20)}
    recs[("c20.test", "TXT")] = ["end"]
    recs[("c15.test", "TXT")] = ["near"]
    res, _ = make(recs)
    assert res.query_txt("c12.test").records == ("near",)
    assert res.query_txt("c0.test").status == r.SERVFAIL


def test_it_builds_the_process_resolver_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DNS_SERVERS", "127.0.0.1:5399,[::1]:53")
    monkeypatch.setenv("GATEWAY_DNS_TIMEOUT", "1.5")
    prev = r.set_resolver(None)
    try:
        res = r.get_resolver()
        assert res is r.get_resolver()
        assert res.timeout == 1.5
        be = res.backend
        assert isinstance(be, r.DnspythonBackend)
        ns = be._resolver.nameservers
        assert [(n.address, n.port) for n in ns] == [("127.0.0.1", 5399), ("::1", 53)]  # type: ignore[union-attr]
    finally:
        r.set_resolver(prev)


def test_it_is_thread_safe_under_concurrent_queries() -> None:
    res, be = make({(f"n{i}.test", "A"): ["192.0.2.9"] for i in range(50)})
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(50):
                assert res.query_a(f"n{i}.test").ok
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert len(be.calls) <= 50 * 4


def test_it_converts_rsa_integers_exactly_like_dkimpy() -> None:
    import random

    from gateway_milter.auth import dkimspeed

    slow_int2str, slow_str2int = dkimspeed.originals()
    rnd = random.Random(7)
    for bits in (0, 1, 8, 9, 1024, 2047, 2048, 4096):
        n = rnd.getrandbits(bits) if bits else 0
        assert dkimspeed.int2str(n) == slow_int2str(n)  # type: ignore[operator]
        for length in (1, 16, 256, 512):
            assert dkimspeed.int2str(n, length) == slow_int2str(n, length)  # type: ignore[operator]
        b = bytes(dkimspeed.int2str(n))
        assert dkimspeed.str2int(b) == slow_str2int(b)  # type: ignore[operator]


def test_it_gives_each_smtp_stage_its_own_dns_deadline_and_one_query_count() -> None:
    from gateway_milter.verdict import Stage
    from tests.unit.auth.auth_helpers import make_ctx

    ctx = make_ctx()
    assert ctx.runner is not None
    ctx.runner.enter_stage(Stage.MAIL)
    mail = r.budget_for(ctx, seconds=0.05, max_queries=3)
    assert r.budget_for(ctx) is mail
    time.sleep(0.06)
    assert not mail.take()  # the MAIL stage's time is spent
    ctx.runner.enter_stage(Stage.EOM)
    eom = r.budget_for(ctx, seconds=5)
    assert eom is not mail and eom.take() and eom.take() and eom.take()
    assert not eom.take() and eom.queries == 3  # the query count is per message


def test_it_shares_one_lookup_between_threads_asking_at_once() -> None:
    res, be = make({("slow.test", "TXT"): ["v=spf1 -all"]}, delay=0.2)
    out: list[r.DnsAnswer] = []
    ts = [threading.Thread(target=lambda: out.append(res.query_txt("slow.test"))) for _ in range(5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [a.records for a in out] == [("v=spf1 -all",)] * 5
    assert len(be.calls) == 1


def test_a_lookup_in_flight_across_clear_cache_neither_comes_back_nor_is_joined() -> None:
    class Gated:
        """Answers with the record set at call time; the first lookup waits for the gate."""

        def __init__(self) -> None:
            self.value, self.calls, self.gate = "old", 0, threading.Event()

        def lookup(self, name: str, rdtype: str, timeout: float) -> r.DnsAnswer:
            self.calls += 1
            value = self.value
            if value == "old":
                self.gate.wait(5)
            return r.DnsAnswer(name, rdtype, r.OK, (value,), ttl=300)

    be = Gated()
    res = r.Resolver(backend=be, timeout=5.0)
    old = res.prefetch("k.test", "TXT")
    while be.calls == 0:  # (the prefetch is in the backend)
        time.sleep(0.005)
    be.value = "new"
    res.clear_cache()
    assert res.query_txt("k.test").records == ("new",)  # a lookup of its own, not the old one's
    be.gate.set()
    assert old.result(5).records == ("old",)
    again = res.query_txt("k.test")
    assert again.from_cache and again.records == ("new",)  # the old answer did not come back
    assert be.calls == 2


def test_a_lookup_queued_before_clear_cache_leaves_the_next_lookup_in_flight() -> None:
    """The generation a lookup compares with is the one it was registered under, not the one
    when a pool thread gets to it: a prefetch still queued at the clear must not take the
    in-flight entry of the lookup started after the clear (callers would stop sharing it)."""

    class Backend:
        def __init__(self) -> None:
            self.calls: list[str] = []
            self.gates = {"a.test": threading.Event(), "b.test": threading.Event()}
            self.lock = threading.Lock()

        def lookup(self, name: str, rdtype: str, timeout: float) -> r.DnsAnswer:
            with self.lock:
                self.calls.append(name)
                first_b = name == "b.test" and self.calls.count("b.test") == 1
            if name == "a.test" or first_b:  # the busy worker, and the lookup after the clear
                self.gates[name].wait(5)
            return r.DnsAnswer(name, rdtype, r.OK, ("v",), ttl=0)  # nothing cached: in-flight sharing only

    be = Backend()
    res = r.Resolver(backend=be, timeout=5.0, workers=1)
    busy = res.prefetch("a.test", "TXT")  # holds the only pool thread
    while not be.calls:
        time.sleep(0.005)
    queued = res.prefetch("b.test", "TXT")  # registered, not started
    res.clear_cache()
    after: list[r.DnsAnswer] = []
    t1 = threading.Thread(target=lambda: after.append(res.query_txt("b.test")))
    t1.start()
    while "b.test" not in be.calls:  # t1's lookup is in the backend
        time.sleep(0.005)
    be.gates["a.test"].set()  # the queued lookup runs now, while t1's is in flight
    assert queued.result(5).ok
    t2 = threading.Thread(target=lambda: after.append(res.query_txt("b.test")))
    t2.start()
    time.sleep(0.2)
    be.gates["b.test"].set()
    t1.join(5)
    t2.join(5)
    assert busy.result(5).ok and len(after) == 2 and all(a.ok for a in after)
    assert be.calls.count("b.test") == 2  # t2 shared t1's lookup


def test_a_name_is_asked_with_its_labels_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backslash in a label is a character of it, not a zone-file escape: "ev\\il.test" was
    asked as evil.test, and "ev\\046il.test" with a dot inside a label."""
    import dns.name

    be = r.DnspythonBackend([("127.0.0.1", 53)], timeout=0.5)
    asked: list[dns.name.Name] = []

    def resolve(qname: dns.name.Name, rdtype: str, **kw: object) -> object:
        asked.append(qname)
        raise dns.resolver.NXDOMAIN(qnames=[qname], responses={qname: None})

    monkeypatch.setattr(be._resolver, "resolve", resolve)
    for name in ("ev\\il.test.uribl.test", "ev\\046il.test.uribl.test", "evil.test.uribl.test"):
        assert be.lookup(name, "A", 0.5).status == r.NXDOMAIN, name
    assert [q.labels[:2] for q in asked] == [(b"ev\\il", b"test"), (b"ev\\046il", b"test"), (b"evil", b"test")]
    assert asked[2] == dns.name.from_text("evil.test.uribl.test")
    assert be.lookup("a..test", "A", 0.5).status == r.INVALID and be.lookup("é.test", "A", 0.5).status == r.INVALID


def test_a_joined_lookup_runs_under_the_joiners_budget() -> None:
    """Message A started a lookup (its budget spent), the pool's worker busy; message B asks for
    the same name with its own budget: B's answer is the listing, not A's "budget exhausted"
    (a zone looked unknown, and a listed client or link went unscored)."""
    backend = r.StaticBackend({("2.0.0.127.bl.test", "A"): ["127.0.0.2"], ("slow.test", "A"): ["192.0.2.1"]})
    res = r.Resolver(backend=backend, timeout=2.0, workers=1)
    plain = backend.lookup

    def lookup(name: str, rdtype: str, timeout: float) -> r.DnsAnswer:
        if name == "slow.test":
            time.sleep(0.5)
        return plain(name, rdtype, timeout)

    backend.lookup = lookup  # type: ignore[method-assign]
    try:
        res.prefetch("slow.test", "A", r.DnsBudget(10))  # (the only worker: busy)
        time.sleep(0.05)
        spent = r.DnsBudget(10, max_queries=0)
        res.prefetch("2.0.0.127.bl.test", "A", spent)  # A: registered, not started
        mine = r.DnsBudget(10)
        fut = res.prefetch("2.0.0.127.bl.test", "A", mine)  # B joins it
        ans = res.wait(fut, "2.0.0.127.bl.test", "A", mine)
        assert (ans.status, ans.records) == (r.OK, ("127.0.0.2",)) and mine.queries == 1
        # B joined A's lookup after it settled as "budget exhausted": asked again under B's
        res.clear_cache()
        fut = res.prefetch("2.0.0.127.bl.test", "A", spent)
        res.wait(fut, "2.0.0.127.bl.test", "A", spent)  # (run by A: spent)
        done: concurrent.futures.Future[r.DnsAnswer] = concurrent.futures.Future()
        done.set_result(r.DnsAnswer("2.0.0.127.bl.test", "A", r.TIMEOUT, error=r.BUDGET_SPENT))
        ans = res.wait(done, "2.0.0.127.bl.test", "A", mine)
        assert (ans.status, ans.records) == (r.OK, ("127.0.0.2",))
    finally:
        res.close()
