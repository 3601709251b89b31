"""bench/antispam_cpu.py --rule-costs: each rule function's own time is its time less the time
of the rules it asked for and less what timing each of those calls costs its caller; the
report adds it up per kind and names the costliest rules (a fake clock: exact figures)."""

from __future__ import annotations

from typing import Any

from tests.unit.antispam.helpers import Clock, bench_module as bench


def test_own_time_leaves_out_the_rules_asked_for_and_the_timing() -> None:
    clock = Clock(0.0)
    timer = bench().RuleTimer(clock)
    timer.overhead = 1e-6  # what timing one call adds to its caller

    def plain(*a: Any) -> int:
        clock.t += 10e-6
        return 1

    timed_plain = timer.wrap("__PLAIN", plain)

    def meta(*a: Any) -> int:
        clock.t += 3e-6  # its own work
        timed_plain()
        clock.t += 1e-6  # the timing around that call (in the caller's time)
        timed_plain()
        clock.t += 1e-6
        return 0

    timed_meta = timer.wrap("META", meta)
    for _ in range(2):  # two messages
        timed_meta()
    kinds = {"__PLAIN": "body", "META": "meta"}
    rep = timer.report(kinds.__getitem__, messages=2)
    assert timer.calls == {"__PLAIN": 4, "META": 2}
    assert timer.hits == {"__PLAIN": 4, "META": 0}
    assert rep["total_us_per_message"] == 23.0  # 2 x 10 plain + 3 of the meta's own
    by_kind = {k["kind"]: k for k in rep["by_kind"]}
    assert by_kind["body"] == {"kind": "body", "us_per_message": 20.0, "calls_per_message": 2.0, "us_per_call": 10.0}
    assert by_kind["meta"]["us_per_message"] == 3.0
    assert [r["rule"] for r in rep["costliest"]] == ["__PLAIN", "META"]
    assert rep["costliest"][0]["hits_per_message"] == 2.0


def test_the_wrapped_function_answers_as_before_and_calibration_leaves_no_trace() -> None:
    timer = bench().RuleTimer()
    overhead = timer.calibrate(rounds=2000)
    assert overhead >= 0.0 and timer.overhead == overhead
    assert timer.own == {} and timer.calls == {}
    wrapped = timer.wrap("R", lambda t, m, ex, v: 7)
    assert wrapped(None, None, None, None) == 7
    assert timer.calls == {"R": 1} and timer.hits == {"R": 1}
