"""Mark as spam / not spam runs as a bulk writer: on the embedded store its writes wait for a
running ``bayes train`` or the background learner instead of giving up after the message path's
short wait (the correction was lost)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.store import BATCH_WRITE_WAIT_S, write_wait


def test_the_training_task_writes_as_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from webadmin import antispam_tasks

    seen: list[float] = []

    def body(*a: Any) -> dict[str, Any]:
        seen.append(write_wait(1.0))
        return {}

    monkeypatch.setattr(antispam_tasks, "_train_message", body)
    assert write_wait(1.0) == 1.0  # outside: the message path's wait
    antispam_tasks.train_message("spam", paths=[])
    assert seen == [BATCH_WRITE_WAIT_S]
    assert write_wait(1.0) == 1.0
