"""Fixtures of the anti-spam integration tests: one real Redis per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_milter.store.redisstore import RedisStore
from tests.services import redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as srv:
        yield srv["url"]


@pytest.fixture()
def redis_store(redis_url: str) -> RedisStore:
    """A RedisStore on that server, emptied."""
    s = RedisStore(redis_url)
    s.client.flushdb()
    return s
