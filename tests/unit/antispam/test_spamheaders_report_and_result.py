"""With ``remove_foreign_headers: false`` and ``add_report: true`` the gateway's X-Spam-Report
replaces one the message arrived with (two reports went out, the sender's first, as the docs
say only the gateway's own are replaced); and X-Bulwark-Result never shows a score rounded up
to a threshold the message stayed under (4.996 read "score=5.00" next to "accept")."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.transforms.spamheaders import spam_headers
from gateway_milter.transforms.status import shown
from gateway_milter.verdict import Outcome
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules
from tests.unit.spine.conftest import apply_like_an_mta

FOREIGN = "X-Spam-Report: *  -50 ALL_CLEAN upstream says this is clean\r\nX-Spam-Checker-Version: up 1\r\n"


@pytest.mark.parametrize("add_report", [True, False])
def test_a_foreign_report_is_replaced_by_the_gateways_own(tmp_path: Path, add_report: bool) -> None:
    rules = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], "fitted_scores": False, "remove_foreign_headers": False,
                              "add_report": add_report}})
    ctx = make_ctx(msg("Hello", "spammy", headers=FOREIGN), pol)
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    delivered = apply_like_an_mta(ctx.headers, list(res.header_edits))
    reports = [v for n, v in delivered if n == "X-Spam-Report"]
    if add_report:
        assert len(reports) == 1 and "LOCAL_SPAMMY" in reports[0] and "ALL_CLEAN" not in reports[0]
    else:  # the gateway writes none: the foreign one is kept, as the setting says
        assert reports == ["*  -50 ALL_CLEAN upstream says this is clean"]
    assert [v for n, v in delivered if n == "X-Spam-Checker-Version"] == ["up 1"]


@pytest.mark.parametrize(("score", "text"), [(4.996, "4.99"), (5.0, "5.00"), (2.5, "2.50"), (0.0, "0.00"),
                                             (4.35, "4.35"), (-3.2, "-3.20"), (11.999, "11.99"), (12.0, "12.00")])
def test_the_result_header_cuts_the_score_down(score: float, text: str) -> None:
    assert shown(score) == text
