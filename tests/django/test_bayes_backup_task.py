"""The daily ``bayes.backup`` task: every learned scope to ``backups/`` under the data
directory, restorable to the same counts; the newest ``GATEWAY_BAYES_BACKUPS`` kept; nothing
learned or 0 kept: no file; it is on the periodic schedule."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.bayesbackup import restore
from gateway_milter.antispam.saview import message_view
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx
from tests.unit.antispam.test_bayes import HAM_WORDS, SPAM_WORDS, sample


def _learn(store: MemoryStore) -> None:
    bc = BayesClassifier(store)
    rnd = random.Random(1)
    for i in range(4):
        bc.learn(message_view(make_ctx(sample(SPAM_WORDS, i, rnd))), True, ("global", "dom:a.example"))
        bc.learn(message_view(make_ctx(sample(HAM_WORDS, i, rnd))), False, ("global",))


def test_it_backs_up_every_scope_and_keeps_the_newest(settings: Any, tmp_path: Path, store: MemoryStore) -> None:
    from webadmin.antispam_tasks import backup_bayes

    settings.GATEWAY = dataclasses.replace(settings.GATEWAY, data_dir=tmp_path, bayes_backups=2)
    assert backup_bayes() == {"written": None, "removed": 0}  # nothing learned yet
    _learn(store)
    made = [Path(backup_bayes()["written"]) for _ in range(2)]
    out = backup_bayes()
    made.append(Path(out["written"]))
    kept = sorted((tmp_path / "backups").glob("bayes-*.jsonl.gz"))
    assert kept == made[1:] and out["scopes"] == 2 and out["removed"] == 1
    target = MemoryStore()
    restore(target, kept[-1])
    for scope in ("global", "dom:a.example"):
        assert BayesClassifier(target).stats(scope) == BayesClassifier(store).stats(scope)


def test_zero_keeps_none_and_the_schedule_has_it(settings: Any, tmp_path: Path, store: MemoryStore) -> None:
    from webadmin.antispam_tasks import backup_bayes

    _learn(store)
    settings.GATEWAY = dataclasses.replace(settings.GATEWAY, data_dir=tmp_path, bayes_backups=0)
    assert backup_bayes()["written"] is None and not (tmp_path / "backups").exists()
    assert settings.CELERY_BEAT_SCHEDULE["bayes-backup"] == {"task": "bayes.backup", "schedule": 86400.0}
