"""Pigeonhole's ``sieve-test`` (Debian dovecot-sieve) as the reference oracle.

The private config drops privileges to ``nobody`` (sieve-test refuses to run as root without
one); recipe: ../shared/recipes/services.md section 3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONF = """mail_uid = nobody
mail_gid = nogroup
mail_home = {home}
mail_location = maildir:{home}/Maildir
plugin {{
  sieve_extensions = +editheader +spamtest +spamtestplus +virustest +ereject
  sieve_max_redirects = 10
}}
"""


@dataclass(frozen=True)
class OracleResult:
    rc: int
    actions: tuple[tuple[str, tuple[str, ...]], ...]
    implicit_keep: bool
    stdout: str
    stderr: str


def available() -> bool:
    return shutil.which("sieve-test") is not None


def run_sieve_test(script: str, message: bytes, env_from: str | None = None, rcpt: str | None = None) -> OracleResult:
    d = Path(tempfile.mkdtemp(prefix="sievetest-"))
    try:
        os.chmod(d, 0o777)
        (d / "home").mkdir()
        os.chmod(d / "home", 0o777)
        (d / "s.sieve").write_text(script)
        (d / "m.eml").write_bytes(message)
        (d / "dovecot.conf").write_text(CONF.format(home=d / "home"))
        for f in d.iterdir():
            os.chmod(f, 0o666 if f.is_file() else 0o777)
        cmd = ["sieve-test", "-c", str(d / "dovecot.conf")]
        if env_from is not None:
            cmd += ["-f", env_from]
        if rcpt:
            cmd += ["-r", rcpt, "-a", rcpt]
        cmd += [str(d / "s.sieve"), str(d / "m.eml")]
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=d, timeout=30)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    actions, keep = parse(p.stdout)
    return OracleResult(p.returncode, actions, keep, p.stdout, p.stderr)


def parse(out: str) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], bool]:
    actions: list[list[object]] = []
    implicit_keep, section = False, None
    for line in out.splitlines():
        if line.startswith("Performed actions:"):
            section = "performed"
            continue
        if line.startswith("Implicit keep:"):
            section = "implicit"
            continue
        if section == "performed":
            if line.startswith(" * "):
                actions.append([line[3:].strip(), []])
            elif line.strip().startswith("+ ") and actions:
                actions[-1][1].append(line.strip()[2:])  # type: ignore[union-attr]
        elif section == "implicit" and line.startswith(" * "):
            implicit_keep = True
    return tuple((str(a), tuple(m)) for a, m in actions), implicit_keep  # type: ignore[arg-type]
