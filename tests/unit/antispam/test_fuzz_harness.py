"""bench/fuzz_content.py's harness with --pipeline: an input also goes through the whole milter
pipeline, inbound and outbound, and a layer the runner caught failing there, or a 4xx answer,
is recorded as an error."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _fuzz_module() -> Any:
    spec = importlib.util.spec_from_file_location("fuzz_content", ROOT / "bench" / "fuzz_content.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_content", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def process_state(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The harness sets the process's default store, a log handler and (through the environment)
    the resolver: each put back after the test."""
    import logging

    from gateway_milter.net.resolver import set_resolver
    from gateway_milter.store import set_default_store

    monkeypatch.setenv("GATEWAY_DNS_SERVERS", "127.0.0.1:9")  # (closed: the DNS layers answer at once)
    before = set_resolver(None)  # (the next lookup builds one from the environment)
    handlers = list(logging.getLogger("bulwark").handlers)
    yield
    logging.getLogger("bulwark").handlers[:] = handlers
    set_default_store(None)
    from gateway_milter.auth.keystore import set_keystore

    set_keystore(None)  # (the harness signs outbound mail with a key of its own)
    monkeypatch.undo()
    set_resolver(before)


def test_the_pipeline_mode_records_a_layer_that_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      process_state: None) -> None:
    fz = _fuzz_module()
    harness = fz.Harness(tmp_path, 60.0, "test", pipeline=True)
    good = fz.SEEDS["plain"]
    got = harness.run(good)
    assert got["error"] == "" and "pipeline" in got["parts"]
    assert harness.errors == {}

    from gateway_milter.layers import fromscreen

    def broken(self: Any, ctx: Any, settings: Any) -> Any:
        raise RuntimeError("from screening broke")

    monkeypatch.setattr(fromscreen.FromScreenLayer, "check", broken)
    got = harness.run(good)
    assert got["error"].startswith("pipeline: ") and "fromscreen" in got["error"]
    (entry,) = harness.errors.values()
    assert entry["where"] == "pipeline" and Path(entry["file"]).read_bytes() == good


def test_the_pipeline_mode_records_a_tempfail_each_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       process_state: None) -> None:
    """The policy script's run-time error answers 451 (gateway.fail_mode): the harness records
    it, for the inbound and the outbound pass."""
    fz = _fuzz_module()
    harness = fz.Harness(tmp_path, 60.0, "test", pipeline=True)
    from gateway_milter.sieve import language

    monkeypatch.setattr(language, "_utf8", lambda s: False)  # every addheader fails at run time
    got = harness.run(fz.SEEDS["plain"])
    assert got["error"].startswith("pipeline: ")
    assert "'inbound tempfail'" in got["error"] and "'outbound tempfail'" in got["error"]
    assert "header field is not valid UTF-8" in got["error"]
