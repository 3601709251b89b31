"""``StateStore.apply_guarded`` on real Redis (its script): the same checks as the in-process
stores' (tests/unit/antispam/test_store_guarded_updates.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_milter.store.redisstore import RedisStore
from tests.services import redis_server
from tests.unit.antispam.test_store_guarded_updates import pairs_never_borrow, updates_wait_for_their_guard

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


def test_a_decrement_never_borrows_from_the_other_half_of_a_pair_on_redis(store: RedisStore) -> None:
    pairs_never_borrow(store)


def test_an_update_is_made_only_while_its_guard_holds_on_redis(store: RedisStore) -> None:
    updates_wait_for_their_guard(store)


def test_many_updates_go_in_bounded_round_trips_with_their_answers_in_order(
        store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # a corpus sent in one write kept Redis busy past the socket's timeout: the calls go in
    # round trips of a bounded size, and each update's answer stays at its place
    from gateway_milter.store import GuardedUpdate
    from gateway_milter.store import redisstore

    monkeypatch.setattr(redisstore, "GUARDED_FIELDS", 10)
    sent: list[int] = []
    send = store._send
    monkeypatch.setattr(store, "_send", lambda cmds, retry, **kw: sent.append(len(cmds)) or send(cmds, retry, **kw))
    ups = [GuardedUpdate("h:g", f"m{i % 7}", 0, (("h:g", {f"m{i % 7}": 1, "#n": 1}),), (("h:g", {"t": (1, 0)}),))
           for i in range(20)]
    got = store.apply_guarded(ups)
    assert got == [True] * 7 + [False] * 13  # each guard holds once: the first of its seven
    assert len(sent) > 1 and sum(sent) == 20
    assert store.counters([("h:g", ["#n", "t"])]) == [[7, 7 * (1 << 32)]]
