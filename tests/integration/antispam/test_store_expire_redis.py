"""``StateStore.expire`` on real Redis (the in-process stores: tests/unit/antispam/test_store_expire.py),
and greylisting's sliding expiry through it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway_milter.layers.greylist import GreylistSettings, decide
from gateway_milter.store.redisstore import RedisStore
from tests.services import redis_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as srv:
        yield srv["url"]


@pytest.fixture()
def store(redis_url: str) -> RedisStore:
    s = RedisStore(redis_url)
    s.client.flushdb()
    return s


def test_it_slides_the_expiry_on_real_redis(store: RedisStore) -> None:
    store.set("e:a", "1", ttl=0.4)
    store.set("e:forever", "x")
    store.incr("e:n", 1, ttl=0.4)
    store.add_counters([("e:h", {"f": 1})], ttl=0.4)
    assert store.expire(["e:a", "e:forever", "e:n", "e:h", "e:missing"], 100) == 4
    assert store.get("e:missing") is None
    for k in ("e:a", "e:forever", "e:n"):
        assert 99 <= (store.ttl(k) or 0) <= 100
    assert 99_000 <= store.client.pttl("e:h") <= 100_000
    store.expire(["e:a"], 0.6)
    time.sleep(0.4)
    assert store.expire(["e:a"], 0.6) == 1  # slides again before it ran out
    time.sleep(0.4)
    assert store.get("e:a") == "1"  # 0.8 s after the first expire of 0.6 s
    time.sleep(0.4)
    assert store.get("e:a") is None
    assert store.expire([], 1) == 0
    with pytest.raises(ValueError):
        store.expire(["e:a"], 0)


def test_it_expires_many_keys_in_one_round_trip_on_real_redis(store: RedisStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    for i in range(5):
        store.set(f"e:{i}", "1")
    sent = []
    orig = redis.connection.AbstractConnection.send_packed_command

    def counting(self: object, command: object, check_health: bool = True) -> None:
        sent.append(command)
        orig(self, command, check_health)  # type: ignore[arg-type]

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    assert store.expire([f"e:{i}" for i in range(5)], 10) == 5
    assert len(sent) == 1


def test_it_restarts_a_known_triplets_expiry_on_real_redis(store: RedisStore) -> None:
    s = GreylistSettings(delay=1, retry_window=100, expiry=1000, auto_pass_after=3)
    t = time.time()
    assert decide(store, "192.0.2.0/24", "a@x.test", "bob@example.com", s, t).state == "new"
    assert decide(store, "192.0.2.0/24", "a@x.test", "bob@example.com", s, t + 2).state == "passed"
    (pkey,) = store.scan_keys("grey:p:")
    store.expire([pkey, "grey:n:192.0.2.0/24"], 5)  # as if the pass was long ago
    # the same day: no write (the expiry restarts at most once a day)
    assert decide(store, "192.0.2.0/24", "a@x.test", "bob@example.com", s, t + 3).state == "known"
    assert (store.ttl(pkey) or 0) <= 5
    # the next day's first message restarts both
    assert decide(store, "192.0.2.0/24", "a@x.test", "bob@example.com", s, t + 86400).state == "known"
    assert (store.ttl(pkey) or 0) > 990 and (store.ttl("grey:n:192.0.2.0/24") or 0) > 990
