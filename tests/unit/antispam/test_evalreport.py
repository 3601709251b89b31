"""The evaluation report's figures (bench/antispam_eval.py, manage.py bayes evaluate)."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.evaluate import EvalReport


def report(spam: list[float], ham: list[float]) -> EvalReport:
    return EvalReport(scores=[("spam", s) for s in spam] + [("ham", h) for h in ham])


def test_caught_at_the_strict_point_lets_at_most_a_tenth_of_a_percent_of_ham_through() -> None:
    ham = [0.0] * 1997 + [9.0, 8.0, 6.0]  # 2,000 ham: at most 2 may pass
    spam = [7.0, 6.5, 6.0, 5.0, 10.0]
    caught, threshold = report(spam, ham).caught_at_max_fp(0.001)
    assert threshold == 6.0  # the third-highest ham
    assert caught == pytest.approx(3 / 5)  # strictly above 6.0: 7.0, 6.5, 10.0


def test_with_fewer_than_a_thousand_ham_no_ham_may_pass() -> None:
    caught, threshold = report([5.0, 3.0], [1.0, 4.0, 2.0]).caught_at_max_fp(0.001)
    assert threshold == 4.0 and caught == 0.5


def test_the_summary_carries_the_strict_point_and_the_auc() -> None:
    s = report([10.0, 9.0, 1.0], [0.0, 2.0]).summary(5.0, 12.0)
    assert s["caught_at_quarantine_pct"] == pytest.approx(66.67)
    assert s["caught_at_max_0.1pct_fp_pct"] == pytest.approx(66.67) and s["threshold_at_max_0.1pct_fp"] == 2.0
    assert s["one_minus_auc_pct"] == pytest.approx(100 / 6, abs=1e-3)  # one pair wrong: the 1.0 spam below the 2.0 ham
    assert report([], [1.0]).caught_at_max_fp() == (0.0, None)


def test_one_minus_auc_counts_the_pairs_in_the_wrong_order_and_ties_as_half() -> None:
    from gateway_milter.antispam.evaluate import one_minus_auc_pct

    assert one_minus_auc_pct([3.0, 4.0], [1.0, 2.0]) == 0.0  # every spam above every ham
    assert one_minus_auc_pct([1.0], [2.0]) == 100.0
    assert one_minus_auc_pct([2.0, 5.0], [2.0, 0.0]) == pytest.approx(100 * 0.5 / 4)  # one tie of four pairs
    assert one_minus_auc_pct([], [1.0]) == 0.0 and one_minus_auc_pct([1.0], []) == 0.0
