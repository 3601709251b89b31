"""Lint gates: ruff over the whole tree, mypy --strict over the milter's core (STYLE.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
CORE = ["gateway_milter/verdict.py", "gateway_milter/context.py", "gateway_milter/pipeline", "gateway_milter/policy",
        "gateway_milter/store/msglog.py", "gateway_milter/store/quarantine.py", "gateway_milter/layers/base.py",
        "gateway_milter/layers/lists.py", "gateway_milter/layers/size.py", "gateway_milter/layers/relay.py",
        "gateway_milter/layers/direction.py", "gateway_milter/envconfig.py", "gateway_milter/front",
        "gateway_milter/adapters", "gateway_milter/transforms/__init__.py", "gateway_milter/transforms/status.py"]


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (requirements-dev.txt)")
    return found


def test_it_passes_ruff() -> None:
    p = subprocess.run([_tool("ruff"), "check", "gateway_milter", "webadmin", "quarantine", "reports", "config",
                        "tests", "bench", "scripts"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_it_passes_mypy_strict_on_the_core() -> None:
    p = subprocess.run([_tool("mypy"), *CORE], cwd=ROOT, capture_output=True, text=True)
    errors = [line for line in p.stdout.splitlines() if any(line.startswith(c) for c in CORE)]
    assert not errors, "\n".join(errors)
