"""bench/antispam_cpu.py --instructions reads callgrind's count from its output file: the
``totals:`` line, not the ``summary:`` at the head (0 when counting starts switched off), and
the parts of a file dumped in several added up; its workers get this command's options but the
parent's own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.unit.antispam.helpers import bench_module as bench


def part(summary: int, totals: int | None) -> str:
    tail = f"totals: {totals}\n" if totals is not None else ""
    return f"# callgrind format\nversion: 1\nevents: Ir\nsummary: {summary}\n\nfn=(1) main\n5 120\n{tail}"


def test_it_reads_the_totals_line_not_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text(part(0, 1_256_038_259))
    assert bench().callgrind_total(out) == 1_256_038_259


def test_it_adds_up_the_parts_and_falls_back_to_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text(part(0, 700))
    (tmp_path / "callgrind.out.2").write_text(part(300, None))  # a part with no totals line
    (tmp_path / "other.out").write_text(part(0, 5))  # another file: not counted
    assert bench().callgrind_total(out) == 1000


def test_a_missing_file_counts_nothing(tmp_path: Path) -> None:
    assert bench().callgrind_total(tmp_path / "callgrind.out") == 0


def test_workers_get_the_options_but_the_parents_own(monkeypatch: Any) -> None:
    monkeypatch.setattr(sys, "argv", ["antispam_cpu.py", "--n", "20", "--against", "../other", "--rounds=3",
                                      "--other-compiled-dir", "/x", "--other-python", "--instructions",
                                      "--seed", "7", "--parts"])
    b = bench()
    assert b.worker_args() == ["--n", "20", "--instructions", "--parts"]
    assert b.worker_args(("--instructions",)) == ["--n", "20", "--parts"]


def test_the_other_worker_runs_as_python_or_on_its_own_build() -> None:
    import argparse

    b = bench()
    assert b.other_env(argparse.Namespace(other_python=True, other_compiled_dir="")) == {"BULWARK_COMPILED": "0"}
    assert b.other_env(argparse.Namespace(other_python=False, other_compiled_dir="/b")) == {"BULWARK_COMPILED_DIR": "/b"}
    assert b.other_env(argparse.Namespace(other_python=False, other_compiled_dir="")) == {}
