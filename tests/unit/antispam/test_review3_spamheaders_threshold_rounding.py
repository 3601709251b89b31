"""X-Spam-Status and X-Spam-Score show the total to one decimal, but spam is judged on the
total itself: a message at 4.96 with required=5.0 is not spam. Shown as "score=5.0" next to
"No" (and X-Spam-Score: 5.0), a downstream rule on the shown score (X-Spam-Score >= 5) files a
message the gateway passed, and the header contradicts itself. SpamAssassin (bug 6419,
Util::get_tag_value_for_score) shows such a ham as required - 0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.transforms.spamheaders import spam_headers
from gateway_milter.verdict import Outcome
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules
from tests.unit.spine.conftest import apply_like_an_mta


def delivered(tmp: Path, score: float) -> dict[str, str]:
    tmp.mkdir(exist_ok=True)
    rules = write_rules(tmp, f"body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY {score}\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], "fitted_scores": False}})
    ctx = make_ctx(msg("Hello", "spammy"), pol)
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    return {n: v for n, v in apply_like_an_mta(ctx.headers, list(res.header_edits)) if n.startswith("X-Spam-")}


@pytest.mark.parametrize("score", [4.95, 4.96, 4.999])
def test_it_never_shows_a_ham_at_the_required_score(tmp_path: Path, score: float) -> None:
    h = delivered(tmp_path, score)
    assert "X-Spam-Flag" not in h
    assert h["X-Spam-Status"].startswith("No, score=4.9 required=5.0 "), h
    assert h["X-Spam-Score"] == "4.9"


def test_it_shows_spam_and_clear_ham_as_they_are(tmp_path: Path) -> None:
    spam = delivered(tmp_path / "a", 5.0)
    assert spam["X-Spam-Status"].startswith("Yes, score=5.0 required=5.0 ") and spam["X-Spam-Score"] == "5.0"
    ham = delivered(tmp_path / "b", 4.94)
    assert ham["X-Spam-Status"].startswith("No, score=4.9 required=5.0 ") and ham["X-Spam-Score"] == "4.9"
