"""Bayes backup and restore with real Redis (the in-process stores:
tests/unit/antispam/test_bayes_backup.py): the embedded store's classifier moved into Redis
classifies to the bit as before, and back; ``manage.py bayes backup`` / ``restore`` do it from
the command line, with a progress bar, and refuse to overwrite learned data unasked."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.bayesbackup import backup, restore
from gateway_milter.antispam.saview import message_view
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.redisstore import RedisStore
from gateway_milter.store.sqlitestore import SqliteStore
from tests.services import redis_server
from tests.unit.antispam.helpers import make_ctx
from tests.unit.antispam.test_bayes import HAM_WORDS, SPAM_WORDS, sample

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as srv:
        yield srv["url"]


@pytest.fixture()
def redis_store(redis_url: str) -> RedisStore:
    s = RedisStore(redis_url)
    s.client.flushdb()
    return s


def learn(store: object) -> None:
    bc = BayesClassifier(store, 5)  # type: ignore[arg-type]
    rnd = random.Random(4)
    for i in range(15):
        bc.learn(message_view(make_ctx(sample(SPAM_WORDS, i, rnd))), True, ("global", "dom:a.example"))
        bc.learn(message_view(make_ctx(sample(HAM_WORDS, i, rnd))), False, ("global", "dom:a.example"))


def results(store: object) -> list[tuple[object, ...]]:
    bc = BayesClassifier(store, 5)  # type: ignore[arg-type]
    rnd = random.Random(8)
    out = []
    for i in range(10):
        c = bc.classify(message_view(make_ctx(sample(SPAM_WORDS if i % 2 else HAM_WORDS, 70 + i, rnd))),
                        ("dom:a.example", "global"))
        out.append((c.probability, c.logodds, c.scope, c.nspam, c.nham))
    return out


def test_the_embedded_stores_classifier_moves_into_redis_and_back(redis_store: RedisStore, tmp_path: Path) -> None:
    src = SqliteStore(tmp_path / "src.sqlite3")
    learn(src)
    expected = results(src)
    assert expected[1][0] is not None and expected[1][0] > 0.9  # (a trained classifier)
    backup(src, tmp_path / "a.gz")
    restore(redis_store, tmp_path / "a.gz")
    assert results(redis_store) == expected
    backup(redis_store, tmp_path / "b.gz", progress=None)  # HSCAN
    back = MemoryStore()
    restore(back, tmp_path / "b.gz")
    assert results(back) == expected
    for scope in ("global", "dom:a.example"):
        assert BayesClassifier(back).stats(scope) == BayesClassifier(src).stats(scope)


def _manage(*args: str, redis_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_REDIS_URL": redis_url, "GATEWAY_DATA_DIR": str(data_dir)}
    env.pop("GATEWAY_DATABASE_URL", None)
    return subprocess.run([sys.executable, "manage.py", "bayes", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_commands_back_up_and_restore_redis(redis_store: RedisStore, tmp_path: Path) -> None:
    learn(redis_store)
    expected = results(redis_store)
    f = tmp_path / "bayes.jsonl.gz"
    r = _manage("backup", str(f), redis_url=redis_store.url, data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "2 scope(s)" in r.stdout and "backing up [" in r.stderr
    r = _manage("restore", str(f), redis_url=redis_store.url, data_dir=tmp_path)
    assert r.returncode != 0 and "already hold learned data" in r.stderr and "nothing was changed" in r.stderr
    redis_store.client.flushdb()
    r = _manage("restore", str(f), "--scope", "global", redis_url=redis_store.url, data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "restored global:" in r.stdout and "restoring [" in r.stderr
    assert BayesClassifier(redis_store).stats("dom:a.example")["fields"] == 0
    r = _manage("restore", str(f), "--replace", redis_url=redis_store.url, data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert results(redis_store) == expected


def test_a_redis_that_keeps_nothing_on_disk_is_named(redis_store: RedisStore) -> None:
    c = redis_store.client
    old_save, old_aof = c.config_get("save")["save"], c.config_get("appendonly")["appendonly"]
    try:
        c.config_set("save", "")
        c.config_set("appendonly", "no")
        warning = redis_store.persistence_warning()
        assert warning is not None and "keeps nothing on disk" in warning
        c.config_set("save", "3600 1")
        assert redis_store.persistence_warning() is None
        assert RedisStore("redis://127.0.0.1:1/0", timeout=0.2).persistence_warning() is None  # cannot say
    finally:
        c.config_set("save", old_save)
        c.config_set("appendonly", old_aof)
