"""The compiled content path (gateway_milter/compiled.py, ADR 0049) gives what the same code
gives as Python: the message view, the Bayes features and keys, every rule's value with
Debian's rule set, on our own messages and, when ../shared is present, on corpus messages.
This process runs the compiled modules (the test command builds them); a child process runs
the same sources with ``BULWARK_COMPILED=0``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway_milter import compiled
from tests.unit.antispam.test_rules_lazy import CORPUS, MESSAGES, corpus_sample


def digest(paths: list[str]) -> list[dict[str, Any]]:
    """What the compiled modules compute for each message, in a form two processes compare."""
    from gateway_milter.antispam.engine import engine_for
    from gateway_milter.antispam.saview import message_view
    from gateway_milter.antispam.tokenizer import hashed, header_order, tokens
    from tests.unit.antispam.helpers import make_ctx

    eng = engine_for((), 2, include_default=True)
    if os.environ.get("GATEWAY_RULES_CACHE_DIR"):
        eng.hyperscan(float(os.environ.get("BULWARK_HS_BUILD_WAIT_S", "900")))
    out = []
    for p in paths:
        view = message_view(make_ctx(Path(p).read_bytes()))
        feats = tokens(view)
        res = eng.run(view)
        out.append({"path": p, "values": dict(sorted(res.values.items())), "score": res.score,
                    "features": h(feats), "keys": h(hashed(feats)), "order": h(header_order(view)), "body": h(view.body),
                    "paragraphs": h(view.paragraphs), "html": h([(f.tags, f.uris) for f in view.html_all]),
                    "relays": h(view.rule_header("X-Spam-Relays-Untrusted"))})
    return out


def h(x: object) -> str:
    return hashlib.sha256(repr(x).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _child_main() -> None:
    print(compiled.status())
    print(json.dumps(digest(json.loads(sys.stdin.read()))))


@pytest.mark.skipif(not compiled.ACTIVE, reason=f"the compiled modules are not in use here: {compiled.REASON}")
def test_the_compiled_modules_compute_what_python_computes(tmp_path: Path) -> None:
    if not Path("/usr/share/spamassassin/50_scores.cf").exists():
        pytest.skip("spamassassin rules not installed")
    paths = []
    for i, raw in enumerate(MESSAGES):
        p = tmp_path / f"own{i}.eml"
        p.write_bytes(raw)
        paths.append(str(p))
    if CORPUS.is_dir():
        paths += [str(p) for p in corpus_sample(int(os.environ.get("BULWARK_COMPILED_SAME_N", "120")))]
    child = subprocess.run([sys.executable, "-c", "from tests.unit.antispam.test_compiled_same import _child_main;"
                            " _child_main()"], input=json.dumps(paths), capture_output=True, text=True,
                           cwd=compiled.PACKAGE_ROOT, env={**os.environ, "BULWARK_COMPILED": "0"}, check=True)
    lines = child.stdout.strip().splitlines()
    assert lines[-2] == "Python (BULWARK_COMPILED=0)"
    as_python = json.loads(lines[-1])
    as_compiled = digest(paths)
    assert len(as_compiled) == len(as_python) == len(paths)
    for c, p in zip(as_compiled, as_python, strict=True):
        assert c == p, c["path"]
    assert sum(len(c["values"]) for c in as_compiled) > 5 * len(paths)  # rules did run
