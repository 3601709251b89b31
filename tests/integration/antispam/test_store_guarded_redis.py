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
