"""Builds the content path's compiled modules, or says whether they are in use:
``.venv/bin/python scripts/compiled.py build [--if-needed] [--verbose] | status`` (gateway_milter/compiled.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_milter.compiled import main

raise SystemExit(main())
