#!/usr/bin/env python3
"""Start throwaway PostgreSQL and Redis servers on free loopback ports, run a command with
GATEWAY_DATABASE_URL and GATEWAY_REDIS_URL pointing at them, stop them, exit with its code.

    scripts/with-services.py -- pytest tests/django
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import postgres_server, redis_server  # noqa: E402


def main() -> int:
    argv = sys.argv[1:]
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if not argv:
        print("usage: with-services.py -- COMMAND...", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres_server())
        rd = stack.enter_context(redis_server(Path(tempfile.mkdtemp(prefix="redis-"))))
        env = dict(os.environ, GATEWAY_DATABASE_URL=pg["url"], GATEWAY_REDIS_URL=rd["url"])
        print(f"with-services: PostgreSQL on {pg['port']}, Redis on {rd['port']}", flush=True)
        return subprocess.call(argv, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
