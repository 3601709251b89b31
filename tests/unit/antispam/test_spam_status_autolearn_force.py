"""X-Spam-Status carries SpamAssassin's _AUTOLEARN_ tag as 4.0 writes it
(PerMsgStatus::get_autolearn_status, learn_timed): ``autolearn=spam autolearn_force=no``,
``autolearn_force=yes (RULES)`` when the message was learned and a hit has tflags
autolearn_force, and ``autolearn=disabled`` with no autolearn_force where Bayes or its
autolearn is off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway_milter.transforms.spamheaders import spam_headers
from gateway_milter.verdict import Outcome
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules
from tests.unit.spine.conftest import apply_like_an_mta

RULES = ("header LOCAL_WON Subject =~ /won/\nscore LOCAL_WON 3\n"
         "body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 10\n"
         "body LOCAL_CLAIM /claim/\nscore LOCAL_CLAIM 0.5\ntflags LOCAL_CLAIM autolearn_force\n"
         "body LOCAL_GRAND /grand/\nscore LOCAL_GRAND 0.5\ntflags LOCAL_GRAND autolearn_force\n")


def _status(tmp_path: Path, subject: str, body: str, bayes: dict[str, Any] | None = None,
            layers: tuple[str, ...] = ("rules", "bayes")) -> str:
    sub = tmp_path / f"set{sum(1 for _ in tmp_path.iterdir())}"
    sub.mkdir()
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(sub, RULES))]},
                  "scoring": {"layers": list(layers), "fitted_scores": False},
                  "bayes": bayes or {}})
    ctx = make_ctx(msg(subject, body), pol)
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    delivered = apply_like_an_mta(ctx.headers, list(res.header_edits))
    (status,) = [v for n, v in delivered if n == "X-Spam-Status"]
    # unfolded: _wrap folds after a comma, or in place of a space
    return status.replace(",\n\t", ",").replace("\n\t", " ")


def test_learned_spam_with_forcing_hits_names_them_sorted(tmp_path: Path, store: MemoryStore) -> None:
    status = _status(tmp_path, "you won", "a grand prize to claim")
    assert " autolearn=spam autolearn_force=yes (LOCAL_CLAIM,LOCAL_GRAND) version=" in status


def test_learned_spam_without_a_forcing_hit_says_no(tmp_path: Path, store: MemoryStore) -> None:
    status = _status(tmp_path, "you won", "a prize")
    assert " autolearn=spam autolearn_force=no version=" in status


def test_not_learned_says_no_even_with_a_forcing_hit(tmp_path: Path, store: MemoryStore) -> None:
    # 3.5 points: between the autolearn thresholds, so not learned; SpamAssassin's discriminator
    # returns nothing then, and learn_timed writes "no"
    status = _status(tmp_path, "you won", "claim it")
    assert " autolearn=no autolearn_force=no version=" in status


def test_autolearn_off_says_disabled_and_nothing_of_force(tmp_path: Path, store: MemoryStore) -> None:
    status = _status(tmp_path, "you won", "a grand prize to claim", bayes={"autolearn": False})
    assert " autolearn=disabled version=" in status and "autolearn_force" not in status


def test_without_bayes_in_the_score_it_says_disabled(tmp_path: Path, store: MemoryStore) -> None:
    status = _status(tmp_path, "you won", "a grand prize to claim", layers=("rules",))
    assert " autolearn=disabled version=" in status and "autolearn_force" not in status
