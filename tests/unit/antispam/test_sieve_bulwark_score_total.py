"""``bulwark_score`` without ``:layer`` compares the judged total, as ``spamtest`` does: at end
of message the scoring layer runs first. Before, a script placed before the scoring layer's,
or any script under ``scoring.mode: score`` (where the administrator's scripts decide), read
the sum of the symbols found so far: a message scored 9 (X-Spam-Flag: YES) read 0 against
``bulwark_score :atleast "8"`` and was delivered. ``:layer "scoring"`` read 0 too."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import write_rules
from tests.unit.spine.conftest import BASE_POLICY, make_gateway
from tests.unit.spine.test_milter_front import NO_NR_OPTS, run

SPAMMY = b"From: Alice <alice@outside.test>\nTo: bob@example.com\nSubject: hello\n\nspammy words\n"
HAM = b"From: Alice <alice@outside.test>\nTo: bob@example.com\nSubject: hello\n\nkind words\n"


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


def _doc(tmp_path: Path, mode: str, position: str, test: str) -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    d = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 9.0\n")
    doc["settings"]["rules"] = {"mode": "on", "include_default": False, "rule_dirs": [str(d)]}
    doc["settings"]["scoring"] = {"mode": mode, "layers": ["rules"], "fitted_scores": False,
                                  "quarantine_score": 50, "reject_score": 60}
    doc["scripts"] = [{"name": "junk", "position": position,
                       "source": f'require "vnd.bulwark"; if {test} {{ discard; }}'}]
    return doc


@pytest.mark.parametrize(("mode", "position"), [("score", "after"), ("on", "before"), ("on", "after")])
@pytest.mark.parametrize("test", ['bulwark_score :atleast "8"', 'bulwark_score :layer "scoring" :atleast "8"'])
def test_the_total_is_the_judged_one(tmp_path: Path, store: MemoryStore, mode: str, position: str, test: str) -> None:
    gw, _, _ = make_gateway(_doc(tmp_path, mode, position, test))
    _ctx, rc = run(gw, "alice@outside.test", "bob@example.com", msg=SPAMMY)
    assert rc == Milter.DISCARD
    _ctx, rc = run(gw, "alice@outside.test", "bob@example.com", msg=HAM)
    assert rc == Milter.ACCEPT


def test_under_reads_the_judged_total_too(tmp_path: Path, store: MemoryStore) -> None:
    gw, _, _ = make_gateway(_doc(tmp_path, "score", "before", 'bulwark_score :under "1"'))
    _ctx, rc = run(gw, "alice@outside.test", "bob@example.com", msg=SPAMMY)
    assert rc == Milter.ACCEPT  # judged 9: not under 1 (read 0 before)
