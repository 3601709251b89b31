"""Two learners of one message at once on real Redis (its script checks the class the message
was learned as; the in-process stores: tests/unit/antispam/test_bayes_learning_races.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_milter.store.redisstore import RedisStore
from tests.services import redis_server
from tests.unit.antispam.test_bayes_learning_races import (a_correction_raced_by_a_learner_of_the_same_class_is_made_once,
                                                           two_learners_of_one_message_count_it_once)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as srv:
        yield srv["url"]


def test_two_learners_of_one_message_count_it_once_on_redis(redis_url: str) -> None:
    RedisStore(redis_url).client.flushdb()
    two_learners_of_one_message_count_it_once(RedisStore(redis_url), RedisStore(redis_url))


def test_a_correction_raced_by_a_learner_of_the_same_class_is_made_once_on_redis(redis_url: str) -> None:
    RedisStore(redis_url).client.flushdb()
    a_correction_raced_by_a_learner_of_the_same_class_is_made_once(RedisStore(redis_url), RedisStore(redis_url))
