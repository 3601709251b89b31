"""The Redis store's scripts go as EVALSHA (their SHA1, not their text, in every write) on real
Redis, and a script Redis has lost (restart, SCRIPT FLUSH) is sent again with its text without
counting twice what was carried out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.saview import message_view
from gateway_milter.store import GuardedUpdate
from gateway_milter.store.redisstore import SHA_GUARDED, SHA_HADD, RedisStore
from tests.services import redis_server
from tests.unit.antispam.helpers import make_ctx, msg

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as srv:
        yield srv["url"]


@pytest.fixture(params=["hiredis", "redis-py"])
def store(redis_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RedisStore:
    if request.param == "redis-py":  # without hiredis: redis-py's own pipeline
        from gateway_milter.store import redisstore

        monkeypatch.setattr(redisstore, "_pack", None)
    s = RedisStore(redis_url)
    s.client.flushdb()
    s.client.script_flush()
    return s


def sent_bytes(store: RedisStore) -> int:
    return int(store.client.info("stats")["total_net_input_bytes"])


def test_lost_scripts_are_sent_again_and_nothing_counts_twice(store: RedisStore) -> None:
    assert store.client.script_exists(SHA_HADD, SHA_GUARDED) == [False, False]
    store.add_counters([("h:a", {"x": 2, "y": 1}), ("h:b", {"x": 5})], ttl=600)  # NOSCRIPT, then EVAL
    assert store.counters([("h:a", ["x", "y"]), ("h:b", ["x"])]) == [[2, 1], [5]]
    assert store.client.script_exists(SHA_HADD) == [True]
    # the PEXPIRE that followed each lost script call is made again after it: the hashes expire
    assert 0 < store.client.pttl("h:a") <= 600_000 and 0 < store.client.pttl("h:b") <= 600_000
    store.add_counters([("h:a", {"x": 1})])  # EVALSHA found
    store.client.script_flush()
    store.add_counters([("h:a", {"x": 1, "y": -1})])
    assert store.counters([("h:a", ["x", "y"])]) == [[4, 0]]  # y fell to 0: dropped
    assert store.client.hlen("h:a") == 1


def test_guarded_updates_after_a_script_flush_are_made_once(store: RedisStore) -> None:
    ups = [GuardedUpdate("h:g", f"m{i}", 0, (("h:g", {f"m{i}": 1, "#n": 1}),), (("h:g", {"t": (1, 2)}),))
           for i in range(3)]
    assert store.apply_guarded(ups) == [True] * 3
    store.client.script_flush()
    again = [GuardedUpdate("h:g", f"m{i}", 0, (("h:g", {f"m{i}": 1, "#n": 1}),), (("h:g", {"t": (1, 2)}),))
             for i in range(2, 5)]
    assert store.apply_guarded(again) == [False, True, True]  # m2 is held by its guard
    assert store.counters([("h:g", ["#n", "t"])]) == [[5, 5 * ((1 << 32) + 2)]]


def test_a_script_failing_for_another_reason_still_raises(store: RedisStore) -> None:
    from gateway_milter.store import StoreError

    store.client.set("h:s", "a string, not a hash")
    with pytest.raises(StoreError, match="WRONGTYPE|wrong kind"):
        store.add_counters([("h:s", {"x": 1}), ("h:ok", {"x": 1})])
    assert store.counters([("h:ok", ["x"])]) == [[1]]  # the call after it was made, once


def test_a_learned_message_sends_the_scripts_sha_not_its_text(store: RedisStore, capsys: pytest.CaptureFixture[str]) -> None:
    views = [message_view(make_ctx(msg(f"Offer number {i}", f"cheap pills and more offers {i} today " * 30)))
             for i in range(6)]
    bc = BayesClassifier(store, 1)
    before = sent_bytes(store)
    assert bc.learn(views[0], True)  # scripts not loaded: sent again with their text
    first = sent_bytes(store) - before
    sizes = []
    for v in views[1:]:
        before = sent_bytes(store)
        assert bc.learn(v, True)
        sizes.append(sent_bytes(store) - before)
    with capsys.disabled():
        print(f"\nbytes sent to Redis per learned message: first (scripts loaded) {first}, then {sorted(sizes)}")
    # the script's text (1,314 characters) is not in the later writes
    assert max(sizes) < first - 1000, (first, sizes)
