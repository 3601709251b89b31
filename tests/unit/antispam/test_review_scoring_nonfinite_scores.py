"""A rule's score must be a finite number. ``score LOCAL_X nan`` (or ``inf``, ``-inf``) in a
rule file or the web admin's local rules was read by Python's float(): a NaN total is judged
by no threshold (a message hitting the rule was never quarantined or rejected), and the spam
headers' X-Spam-Level (int(score)) raised on NaN and +-inf, so end of message failed and the
message was tempfailed on every retry. SpamAssassin refuses such a score line; so do we now."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway_milter.layers.base import SettingsError
from gateway_milter.layers.rules import check_local_rules
from gateway_milter.store.memory import MemoryStore
from gateway_milter.transforms.spamheaders import spam_headers
from gateway_milter.verdict import Outcome
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

SPAMMY = "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "-Infinity", "1" + "0" * 400])
def test_a_non_finite_score_line_is_not_read(tmp_path: Path, store: MemoryStore, value: str) -> None:
    d = write_rules(tmp_path, SPAMMY + f"body LOCAL_ODD /pizza/\nscore LOCAL_ODD {value}\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(d)]},
                  "scoring": {"layers": ["rules"], "fitted_scores": False}})
    ctx = make_ctx(msg("Hello", "spammy pizza"), pol)
    res = ctx.layer("scoring")
    assert math.isfinite(res.fact("score"))
    assert res.has("SPAM_SCORE_QUARANTINE")  # LOCAL_SPAMMY's 6 still judged
    out = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert out is not None
    assert any(e.name == "X-Spam-Flag" and e.value == "YES" for e in out.header_edits)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_the_web_admins_rules_refuse_a_non_finite_score(value: str) -> None:
    with pytest.raises(SettingsError):
        check_local_rules(f"body LOCAL_ODD /pizza/\nscore LOCAL_ODD {value}\n")
