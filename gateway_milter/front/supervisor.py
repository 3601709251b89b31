"""``manage.py runmilter``: supervises the milter worker process.

- SIGHUP: asks the worker to reload the policy now (a line on its standard input);
- SIGTERM/SIGINT: stops the worker cleanly (libmilter finishes open sessions) and exits;
- a worker that dies unexpectedly is restarted with back-off; the MTA answers 4xx meanwhile
  (``milter_default_action = tempfail``), so no mail is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent.parent


class Supervisor:
    def __init__(self, socket_spec: str, timeout: int = 600) -> None:
        self.socket_spec = socket_spec
        self.timeout = timeout
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _spawn(self) -> subprocess.Popen[bytes]:
        if self.socket_spec.startswith(("unix:", "local:")):
            path = self.socket_spec.split(":", 1)[1]
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        cmd = [sys.executable, "-m", "gateway_milter.front.worker", "--socket", self.socket_spec,
               "--timeout", str(self.timeout)]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, cwd=ROOT)

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        if self.child is not None and self.child.stdin is not None:
            try:
                self.child.stdin.write(b"reload\n")
                self.child.stdin.flush()
            except OSError:
                pass

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        backoff = 0.5
        while not self.stopping:
            started = time.monotonic()
            self.child = self._spawn()
            while True:
                try:
                    rc = self.child.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if self.stopping:
                        try:
                            rc = self.child.wait(timeout=20)
                        except subprocess.TimeoutExpired:
                            self.child.kill()
                            rc = self.child.wait()
                        break
            if self.stopping:
                return 0
            if time.monotonic() - started > 30:
                backoff = 0.5
            sys.stderr.write(f"milter worker exited with {rc}; restarting in {backoff:.1f}s\n")
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
        return 0
