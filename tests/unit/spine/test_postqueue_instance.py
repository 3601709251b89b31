"""The queue page and the dashboard read the Postfix instance the gateway runs with: ``postqueue
-c DIR -j`` when GATEWAY_POSTFIX_CONFIG_DIR names its configuration directory (the run command's
private instance), the system's otherwise. A stand-in postqueue on PATH records its arguments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quarantine import mtaqueue

ENTRY = {"queue_name": "deferred", "queue_id": "4ABC123", "arrival_time": 1796100000, "message_size": 900,
         "sender": "a@sender.test", "recipients": [{"address": "b@example.test", "delay_reason": "connection refused"}]}


@pytest.fixture
def fake_postqueue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    args_file = tmp_path / "args"
    script = bin_dir / "postqueue"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {args_file}\necho '{json.dumps(ENTRY)}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return args_file


def test_the_system_instance_without_the_setting(fake_postqueue: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_POSTFIX_CONFIG_DIR", raising=False)
    rows = mtaqueue.read_queue()
    assert fake_postqueue.read_text().split() == ["-j"]
    assert [(r.queue_id, r.queue_name) for r in rows] == [("4ABC123", "deferred")]


def test_the_named_instance_with_the_setting(fake_postqueue: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "postfix" / "etc"
    conf.mkdir(parents=True)
    monkeypatch.setenv("GATEWAY_POSTFIX_CONFIG_DIR", str(conf))
    assert len(mtaqueue.read_queue()) == 1
    assert fake_postqueue.read_text().split() == ["-c", str(conf), "-j"]


@pytest.mark.parametrize("value", ["relative/etc", "/nonexistent/postfix", "-j; rm -rf /"])
def test_a_setting_that_is_not_a_directory_is_refused_before_running_anything(
        fake_postqueue: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GATEWAY_POSTFIX_CONFIG_DIR", value)
    with pytest.raises(mtaqueue.QueueUnavailable, match="is not a directory"):
        mtaqueue.read_queue()
    assert not fake_postqueue.exists()
