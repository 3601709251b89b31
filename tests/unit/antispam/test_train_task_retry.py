"""Mark as spam / not spam survives a failing token store: the Celery task is retried with a
growing delay (learning is idempotent, so a retry after a partial try counts nothing twice),
and acknowledged only when it ends; run eagerly (no worker), the failure reaches the caller."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.store import StoreError
from webadmin import antispam_tasks
from webadmin.antispam_tasks import TRAIN_RETRIES, retry_delay, train_message


class _Retry(Exception):
    pass


def test_the_delay_doubles_from_two_seconds_up_to_five_minutes() -> None:
    assert [retry_delay(n) for n in range(TRAIN_RETRIES)] == [2, 4, 8, 16, 32, 64, 128, 256] + [300] * 8
    assert TRAIN_RETRIES == 16 and train_message.max_retries == 16
    assert sum(map(retry_delay, range(TRAIN_RETRIES))) == 2910  # (the window the docs give: about 48 minutes)
    assert train_message.acks_late is True


def test_a_failing_store_retries_the_task_on_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fails(*a: Any) -> dict[str, Any]:
        calls.append(1)
        raise StoreError("redis: connection refused")

    asked: list[dict[str, Any]] = []

    def retry(**kw: Any) -> Exception:
        asked.append(kw)
        return _Retry()

    monkeypatch.setattr(antispam_tasks, "_train_message", fails)
    monkeypatch.setattr(train_message, "retry", retry)
    for n in (0, 3, 9):
        train_message.push_request(called_directly=False, is_eager=False, retries=n)  # (as a worker runs it)
        try:
            with pytest.raises(_Retry):
                train_message.run("spam", paths=["x.eml"])
        finally:
            train_message.pop_request()
    assert [a["countdown"] for a in asked] == [2, 16, 300]
    assert all(isinstance(a["exc"], StoreError) for a in asked) and len(calls) == 3


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_message, "retry", lambda **kw: pytest.fail("retried"))
    train_message.push_request(called_directly=False, is_eager=False, retries=0)
    try:
        with pytest.raises(ValueError, match="spam or ham"):
            train_message.run("maybe", paths=[])
    finally:
        train_message.pop_request()


def test_run_eagerly_a_failing_store_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*a: Any) -> dict[str, Any]:
        raise StoreError("locked")

    monkeypatch.setattr(antispam_tasks, "_train_message", fails)
    monkeypatch.setattr(train_message, "retry", lambda **kw: pytest.fail("retried"))
    with pytest.raises(StoreError):
        train_message.apply(kwargs={"label": "spam", "paths": []}).get()
    with pytest.raises(StoreError):
        train_message("spam", paths=[])
