"""X-Spam-Report and the subject tag as SpamAssassin writes and reads them: a score of 10
points or more either way without its decimal (``%4.0f``: ``* 1000 GTUBE``), every entry on a
line of its own after an empty first line (its ``_REPORT_``); white space around the subject
tag is not part of it (``rewrite_header Subject ***SPAM*** `` cannot keep a trailing space),
so "[SPAM] " tags once and an already tagged subject is not tagged again."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.transforms.spamheaders import spam_headers
from gateway_milter.verdict import Outcome
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules
from tests.unit.spine.conftest import apply_like_an_mta


def test_large_scores_are_written_without_decimals(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "body LOCAL_BIG /spammy/\nscore LOCAL_BIG 1000\ndescribe LOCAL_BIG big one\n"
                                  "body LOCAL_NEG /spammy/\nscore LOCAL_NEG -12.5\n"
                                  "body LOCAL_SMALL /spammy/\nscore LOCAL_SMALL 2.5\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], "fitted_scores": False, "add_report": True}})
    res = spam_headers(make_ctx(msg("Offer", "spammy"), pol), Outcome.accept(), None)
    assert res is not None
    [report] = [e.value for e in res.header_edits if e.name == "X-Spam-Report"]
    assert report == "\n\t* 1000 LOCAL_BIG big one\n\t*  2.5 LOCAL_SMALL\n\t*  -12 LOCAL_NEG"


def _delivered_subjects(tmp_path: Path, subject: str, tag: str) -> list[str]:
    rules = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], "fitted_scores": False, "subject_tag": tag}})
    ctx = make_ctx(msg(subject, "spammy"), pol)
    res = spam_headers(ctx, Outcome.accept(), None)
    assert res is not None
    return [v for n, v in apply_like_an_mta(ctx.headers, list(res.header_edits)) if n == "Subject"]


def test_a_tag_with_white_space_around_it_tags_once(tmp_path: Path) -> None:
    assert _delivered_subjects(tmp_path, "[SPAM] Offer", "[SPAM] ") == ["[SPAM] Offer"]
    assert _delivered_subjects(tmp_path, "Offer", " [SPAM] ") == ["[SPAM] Offer"]
