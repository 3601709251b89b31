"""A score file that holds a figure float() cannot read (``score FOO 1..2``, written after
the save check passed, which only runs when the settings are saved) made the scoring layer
raise ValueError on every message: its fail mode is tempfail, so all mail was tempfailed
until the file was mended. It is now treated as a file that cannot be read (logged, the
layers' own scores), as a missing one already was."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules


def test_a_score_file_with_a_bad_figure_does_not_fail_every_message(tmp_path: Path, store: MemoryStore) -> None:
    rules = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    scores = tmp_path / "scores.cf"
    scores.write_text("score LOCAL_SPAMMY 7 7 7 7\nscore LOCAL_OTHER 1..2\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], "score_file": str(scores)}})
    res = make_ctx(msg("Hello", "spammy"), pol).layer("scoring")
    assert res.error is None
    assert res.fact("score") == 6.0 and res.has("SPAM_SCORE_QUARANTINE")  # the rule's own score
