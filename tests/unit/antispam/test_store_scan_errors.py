"""A store that cannot be read answers StoreError from its key listing and hash reads (the
pages and commands that list keys show the store's error, not a 500 from a raw database error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.store import StoreError
from gateway_milter.store.redisstore import RedisStore
from gateway_milter.store.sqlitestore import SqliteStore


def test_a_damaged_sqlite_store_raises_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        SqliteStore(bad)
    store = SqliteStore(tmp_path / "state.sqlite3")
    store._db().close()  # (the connection this thread uses, gone: every statement fails)
    with pytest.raises(StoreError):
        store.scan_keys("grey:")
    with pytest.raises(StoreError):
        list(store.counter_items("bayes2:global"))


def test_an_unreachable_redis_raises_store_error() -> None:
    store = RedisStore("redis://127.0.0.1:1/0", timeout=0.2)
    with pytest.raises(StoreError):
        store.scan_keys("grey:")
    with pytest.raises(StoreError):
        list(store.counter_items("bayes2:global"))
