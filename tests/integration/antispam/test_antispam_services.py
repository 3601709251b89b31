"""Anti-spam against real services: DNSBL and URIBL through rbldnsd on loopback (via the
gateway's one resolver), Bayes and the state-store contract on real Redis, greylisting on
real Redis and on the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.greylist import GreylistSettings, decide
from gateway_milter.net.resolver import Resolver, set_resolver
from gateway_milter.store import StateStore, set_default_store
from gateway_milter.store.redisstore import RedisStore
from gateway_milter.store.sqlitestore import SqliteStore
from tests.services import rbldnsd_server, redis_server
from tests.unit.antispam.helpers import make_ctx, msg, policy
from tests.unit.antispam.helpers import Clock

pytestmark = pytest.mark.integration

IP4SET = """$SOA 300 ns1.bl.test. hostmaster.bl.test. 0 600 300 86400 300
$NS 300 ns1.bl.test.
:127.0.0.2:Listed in bl.test
127.0.0.2
192.0.2.99 :127.0.0.4:Spam source
198.51.100.0/24
!198.51.100.7
"""
IP6TRIE = """$SOA 300 ns1.bl6.test. hostmaster.bl6.test. 0 600 300 86400 300
$NS 300 ns1.bl6.test.
:127.0.0.2:Listed in bl6.test
2001:db8::/64
"""
DNSET = """$SOA 300 ns1.uribl.test. hostmaster.uribl.test. 0 600 300 86400 300
$NS 300 ns1.uribl.test.
:127.0.1.2:URIBL listed
evil.example
.badsite.test
*.phish.test :127.0.1.4:phishing
test
"""


@pytest.fixture(scope="module")
def rbl() -> Iterator[dict[str, Any]]:
    with rbldnsd_server({("bl.test", "ip4set"): IP4SET, ("bl6.test", "ip6trie"): IP6TRIE,
                         ("uribl.test", "dnset"): DNSET}) as srv:
        prev = set_resolver(Resolver([("127.0.0.1", srv["port"])], timeout=2.0))
        yield srv
        set_resolver(prev)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as srv:
        yield srv["url"]


DNSBL_POLICY = {"dnsbl": {"zones": [{"zone": "bl.test", "weight": 4, "action": "refuse"},
                                    {"zone": "bl.test", "symbol": "DNSBL_SPAM_SOURCE", "weight": 2, "codes": ["127.0.0.4"]}]}}


def test_it_finds_listed_ipv4_clients_in_rbldnsd(rbl: dict[str, Any]) -> None:
    res = make_ctx(msg(), policy(DNSBL_POLICY), ip="192.0.2.99").layer("dnsbl")
    assert res.has("DNSBL_BL_TEST") and res.has("DNSBL_SPAM_SOURCE")
    assert res.fact("listed")["bl.test"] == ["127.0.0.4"]


def test_it_honours_cidr_and_exclusions(rbl: dict[str, Any]) -> None:
    assert make_ctx(msg(), policy(DNSBL_POLICY), ip="198.51.100.20").layer("dnsbl").has("DNSBL_BL_TEST")
    excluded = make_ctx(msg(), policy(DNSBL_POLICY), ip="198.51.100.7").layer("dnsbl")
    assert not excluded.symbols and excluded.error is None
    assert not make_ctx(msg(), policy(DNSBL_POLICY), ip="203.0.113.5").layer("dnsbl").symbols


def test_it_finds_listed_ipv6_clients_in_rbldnsd(rbl: dict[str, Any]) -> None:
    pol = policy({"dnsbl": {"zones": [{"zone": "bl6.test", "weight": 4}]}})
    assert make_ctx(msg(), pol, ip="2001:db8::25").layer("dnsbl").has("DNSBL_BL6_TEST")
    assert not make_ctx(msg(), pol, ip="2001:db8:1::25").layer("dnsbl").symbols


def test_it_finds_listed_url_domains_in_rbldnsd(rbl: dict[str, Any]) -> None:
    pol = policy({"uribl": {"zones": [{"zone": "uribl.test", "weight": 3},
                                      {"zone": "uribl.test", "symbol": "URIBL_PHISH", "weight": 5, "codes": ["127.0.1.4"]}]}})
    body = ("Visit hxxp://www.badsite[.]test/login and http://evil.example/ and "
            "<a href=http://x.phish.test/>this</a> http://harmless.org/")
    res = make_ctx(msg("x", body), pol).layer("uribl")
    assert res.has("URIBL_URIBL_TEST")
    assert set(res.fact("listed")["uribl.test"]) == {"badsite.test", "evil.example"}
    clean = make_ctx(msg("x", "only http://harmless.org/ here"), pol).layer("uribl")
    assert not clean.symbols and clean.fact("targets") == ["harmless.org"]


def test_it_looks_up_the_target_of_a_meta_refresh_in_rbldnsd(rbl: dict[str, Any]) -> None:
    """A spam whose only link is a <meta http-equiv="refresh"> to a listed domain (the reader's
    browser goes there by itself) is listed, as SpamAssassin's URIDNSBL lists it."""
    pol = policy({"uribl": {"zones": [{"zone": "uribl.test", "weight": 3}]}})
    html = ('<html><head><meta http-equiv="refresh" content="0; url=http://www.evil.example/go"></head>'
            "<body><p>Loading...</p></body></html>")
    res = make_ctx(msg("x", html, ctype="text/html"), pol).layer("uribl")
    assert res.has("URIBL_URIBL_TEST") and set(res.fact("listed")["uribl.test"]) == {"evil.example"}


def test_it_reports_unknown_when_the_dns_server_is_unreachable() -> None:
    prev = set_resolver(Resolver([("127.0.0.1", 9)], timeout=0.3))
    try:
        res = make_ctx(msg(), policy(DNSBL_POLICY), ip="192.0.2.99").layer("dnsbl")
        assert res.error is None and not res.symbols and res.fact("unknown")
    finally:
        set_resolver(prev)


def test_it_keeps_the_store_contract_on_real_redis(redis_url: str) -> None:
    from tests.unit.antispam.test_store import contract

    s = RedisStore(redis_url)
    s.client.flushdb()
    # Redis keeps time itself: check the parts of the contract that do not move a fake clock
    assert s.add("k:b", "x", ttl=10) and 0 < (s.ttl("k:b") or 0) <= 10
    assert s.incr("k:n", 2, ttl=5) == 2 and s.incr("k:n", 3, ttl=5) == 5 and 4 < (s.ttl("k:n") or 0) <= 5
    s.add_counters([("h:1", {"a": 2, "b": 1})])
    s.add_counters([("h:1", {"a": 1, "b": -1})])
    assert s.counters([("h:1", ["a", "b"]), ("h:x", ["a"])]) == [[3, 0], [0]]
    assert s.counter_fields("h:1") == 1
    assert s.scan_keys("h:") == ["h:1"]
    assert contract  # the full clock-driven contract runs on the embedded stores


@pytest.mark.parametrize("packer", ["hiredis", "pipeline"])
def test_it_reads_counters_in_one_round_trip_on_real_redis(redis_url: str, packer: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    from gateway_milter.store import StoreError
    from gateway_milter.store import redisstore

    if packer == "pipeline":  # redis-py's own pipeline, used when hiredis is missing
        monkeypatch.setattr(redisstore, "_pack", None)
    s = RedisStore(redis_url)
    s.client.flushdb()
    fields = [f"t{i:012x}" for i in range(1500)]
    s.add_counters([("bayes2:g", {f: i + 1 for i, f in enumerate(fields[::2])}), ("bayes2w:g", {"a": 7})])
    asked = [("bayes2:g", ["#s", *fields]), ("bayes2w:g", ["a", "b"]), ("none:k", []), ("none:j", ["x"])]
    want = [[0] + [i // 2 + 1 if i % 2 == 0 else 0 for i in range(1500)], [7, 0], [], [0]]
    calls = s.client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)
    assert s.counters(asked) == want
    assert s.client.info("commandstats")["cmdstat_hmget"]["calls"] - calls == 3
    assert s.counters([("none:k", [])]) == [[]]
    # an error reply (a key of another type) is a StoreError, and the next read is not
    # handed the rest of the failed read's replies
    s.set("plain:k", "1")
    with pytest.raises(StoreError):
        s.counters([("plain:k", ["a"]), ("bayes2w:g", ["a"])])
    assert s.counters([("bayes2w:g", ["a", "b"])]) == [[7, 0]]
    # a write larger than one script call: split, all of it applied
    from gateway_milter.store.redisstore import EVAL_FIELDS

    many = {f"w{i}": (i % 5) - 3 for i in range(EVAL_FIELDS * 2 + 10)}  # a fifth fall to 0: dropped
    s.add_counters([("bayes2w:big", {f: 3 for f in many}), ("bayes2w:big", many)])
    got = s.counters([("bayes2w:big", list(many))])[0]
    assert got == [3 + d for d in many.values()] and s.counter_fields("bayes2w:big") == sum(d > -3 for d in many.values())
    # a connection the server dropped is opened again
    redis.Redis.from_url(redis_url).client_kill_filter(_type="normal", skipme=True)
    assert s.counters(asked) == want


def test_it_reports_a_store_error_when_redis_is_gone(tmp_path: Path) -> None:
    from gateway_milter.store import StoreError

    with redis_server(tmp_path / "r") as srv:
        s = RedisStore(srv["url"], timeout=0.5)
        assert s.counters([("k", ["a"])]) == [[0]]
    with pytest.raises(StoreError):
        s.counters([("k", ["a"])])


def test_it_learns_and_classifies_bayes_on_real_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s = RedisStore(redis_url)
    s.client.flushdb()
    bc = BayesClassifier(s, min_learned=5)
    spammy = "cheap pills lottery winner casino bonus claim prize now"
    for i in range(8):
        bc.learn(message_view(make_ctx(msg(f"win {i}", spammy))), True)
        bc.learn(message_view(make_ctx(msg(f"meet {i}", "meeting agenda for the project review tomorrow at noon"))), False)
    assert bc.learn(message_view(make_ctx(msg("win 0", spammy))), True) is False
    assert bc.stats()["spam_learned"] == 8
    c = bc.classify(message_view(make_ctx(msg("offer", "lottery winner claim your casino prize"))))
    assert c.probability is not None and c.probability > 0.9
    # the token model learned in Redis too (weights of their own hash), and reads them back
    assert c.token_logit > 0.5 and bc.stats()["token_weights"] > 0
    assert bc.classify(message_view(make_ctx(msg("meet 9", "meeting agenda for the project review")))).token_logit < -0.5
    import redis

    sends: list[int] = []
    orig = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, *a: Any, **kw: Any) -> Any:
        sends.append(1)
        return orig(self, *a, **kw)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    bc.classify(message_view(make_ctx(msg())), ["user:bob@example.com", "dom:example.com", "global"])
    assert len(sends) == 1  # every scope's counts and weights in one write: one round trip


def test_it_keeps_the_sender_history_on_real_redis(redis_url: str) -> None:
    from tests.unit.antispam.test_sender_history import from_sender

    s = RedisStore(redis_url)
    s.client.flushdb()
    bc = BayesClassifier(s, min_learned=2)
    for i in range(3):
        bc.learn(message_view(make_ctx(from_sender(msg(f"news {i}", f"issue {i} of the newsletter")))), False)
        bc.learn(message_view(make_ctx(msg(f"win {i}", "cheap pills lottery winner casino"))), True)
    known = message_view(make_ctx(from_sender(msg("news 9", "cheap pills lottery"))))
    res = bc.classify(known)
    assert (res.sender_spam, res.sender_ham) == (0, 3)
    bc.learn(known, True)  # marked as spam: the history now holds both
    res = bc.classify(known)
    assert (res.sender_spam, res.sender_ham) == (1, 3)
    bc.forget(known)
    assert (bc.classify(known).sender_spam, bc.classify(known).sender_ham) == (0, 3)
    forged = message_view(make_ctx(from_sender(msg("news 10", "cheap pills"), ip="203.0.113.9")))
    assert (bc.classify(forged).sender_spam, bc.classify(forged).sender_ham) == (0, 0)


def greylist_flow(store: StateStore) -> None:
    s = GreylistSettings(mode="on", delay=1, retry_window=60, auto_pass_after=0)
    import time

    t = time.time()
    assert decide(store, "192.0.2.0/24", "a@x.test", "bob@example.com", s, t).state == "new"
    assert decide(store, "192.0.2.0/24", "a@x.test", "bob@example.com", s, t + 0.2).state == "early"
    assert decide(store, "192.0.2.0/24", "a@x.test", "bob@example.com", s, t + 1.5).state == "passed"
    assert decide(store, "192.0.2.0/24", "a@x.test", "bob@example.com", s, t + 2).state == "known"


def test_it_greylists_with_state_in_real_redis(redis_url: str) -> None:
    s = RedisStore(redis_url)
    s.client.flushdb()
    greylist_flow(s)
    # a second process (another client) sees the same state
    assert RedisStore(redis_url).scan_keys("grey:p:")


def test_it_greylists_with_state_in_the_embedded_store(tmp_path: Path) -> None:
    greylist_flow(SqliteStore(tmp_path / "state.sqlite3"))
    assert SqliteStore(tmp_path / "state.sqlite3").scan_keys("grey:p:")


def test_it_greylists_through_the_layer_on_redis(redis_url: str) -> None:
    s = RedisStore(redis_url)
    s.client.flushdb()
    set_default_store(s)
    try:
        from gateway_milter.verdict import Stage

        pol = policy({"greylist": {"mode": "on", "delay": 300}})
        ctx = make_ctx(msg(), pol, stage=Stage.RCPT)
        assert ctx.runner is not None
        assert ctx.runner.recipient_result(ctx, "greylist", ctx.recipients[0]).has("GREYLIST_DEFER")
    finally:
        set_default_store(None)
    assert Clock  # shared helper imported for the embedded contract


@pytest.mark.backend_neutral  # (the bench names its store and its Redis itself)
@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_the_bayes_store_bench_runs(redis_url: str, kind: str) -> None:
    import json
    import subprocess
    import sys

    from tests.services import shared_path

    if not shared_path("corpus", "spamassassin").is_dir():
        pytest.skip("../shared/corpus/spamassassin is absent: the bench reads its messages")
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, str(root / "bench" / "bayes_store.py"), "--store", kind, "--redis", redis_url,
                          "--rounds", "1"], capture_output=True, text=True, timeout=600, check=True)
    got = json.loads(out.stdout)
    assert got["messages"] == 150 and got["fields_per_read_mean"] > 500 and got["cache_as_shipped"] == (kind == "sqlite")
    assert 0 < got["classify_cached_cpu_ms_median"] < 50 and 0 < got["classify_uncached_cpu_ms_median"] < 50
    assert 0.2 < got["classify_cache_hit_rate"] < 1  # later messages find fields earlier ones read
    assert 0 < got["learn_batches_cpu_ms"] < 100 and 0 < got["learn_one_by_one_cpu_ms"] < 100
    assert ("learn_batches_server_cpu_ms" in got) == (kind == "redis")
