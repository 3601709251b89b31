"""A command run before ``bootstrap`` (a database without Bulwark's tables) says so and how to
fix it, in one line and exit code 1, instead of a traceback of the first failing query."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("argv", [["scan", "--rcpt", "bob@example.com", "MSG"], ["msglog", "show"]])
def test_a_command_before_bootstrap_says_to_run_it(tmp_path: Path, argv: list[str]) -> None:
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"From: a@sender.test\nSubject: hi\n\nhello\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="config.settings")
    (tmp_path / "data").mkdir()
    p = subprocess.run([sys.executable, "manage.py", *[str(msg) if a == "MSG" else a for a in argv]], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert "no Bulwark tables yet" in p.stderr and "manage.py bootstrap" in p.stderr
    assert str(tmp_path / "data" / "bulwark.sqlite3") in p.stderr
