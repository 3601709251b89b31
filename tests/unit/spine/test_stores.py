from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway_milter import envconfig
from gateway_milter.store.msglog import JournalIngestor, JournalLogSink
from gateway_milter.store.quarantine import FilesystemQuarantineStore


def test_it_stores_quarantine_entries_durably_and_refuses_paths_outside(tmp_path: Path) -> None:
    st = FilesystemQuarantineStore(tmp_path)
    meta = st.store(b"Subject: x\r\n\r\nbody", {"created": 1_800_000_000.0, "recipients": ["a@b.test"]})
    assert st.read(meta["path"]) == b"Subject: x\r\n\r\nbody"
    side = json.loads((tmp_path / meta["path"]).with_suffix(".json").read_text())
    assert side["qid"] == meta["qid"] and side["recipients"] == ["a@b.test"]
    assert not list(tmp_path.rglob("*.tmp"))
    assert [m["qid"] for m in st.scan()] == [meta["qid"]]
    with pytest.raises(ValueError):
        st.read("../../etc/passwd")
    st.delete(meta["path"])
    assert not list(tmp_path.rglob("*.eml"))


def test_it_loses_no_record_when_the_writer_crashes(tmp_path: Path) -> None:
    sink = JournalLogSink(tmp_path)
    for i in range(1200):
        sink.emit({"log_id": f"id{i}", "n": i})
    written: list[dict[str, Any]] = []
    calls = {"n": 0}

    def flaky_writer(batch: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("database went away")
        written.extend(batch)

    ing = JournalIngestor(tmp_path, flaky_writer)
    with pytest.raises(RuntimeError):
        ing.run_once()
    assert len(written) == 500  # the first batch is committed, the second failed
    # a crash between the write and the checkpoint replays: the writer is idempotent by log_id
    ing.run_once()
    ids = [r["log_id"] for r in written]
    assert len(set(ids)) == 1200 and set(ids) == {f"id{i}" for i in range(1200)}
    sink.emit({"log_id": "late"})
    ing.run_once()
    assert written[-1]["log_id"] == "late"
    sink.close()
    ing.run_once()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("seg-")]  # closed and consumed


def test_it_ignores_a_torn_last_line(tmp_path: Path) -> None:
    (tmp_path / "seg-1-1.jsonl.open").write_bytes(b'{"log_id": "a"}\n{"log_id": "b"')
    got: list[dict[str, Any]] = []
    JournalIngestor(tmp_path, got.extend).run_once()
    assert [r["log_id"] for r in got] == ["a"]


def test_a_reader_waits_for_a_running_ingestion_instead_of_missing_its_batch(tmp_path: Path) -> None:
    import fcntl
    import threading

    (tmp_path / "seg-1-1.jsonl.open").write_bytes(b'{"log_id": "a"}\n')
    got: list[dict[str, Any]] = []
    ingestor = JournalIngestor(tmp_path, got.extend)
    other = open(tmp_path / "ingest.lock", "a")  # noqa: SIM115 - another ingester's lock
    fcntl.flock(other, fcntl.LOCK_EX)
    assert ingestor.run_once() == 0 and got == []  # the periodic task: someone else is at it
    threading.Timer(0.3, lambda: (fcntl.flock(other, fcntl.LOCK_UN), other.close())).start()
    assert ingestor.run_once(wait_s=5.0) == 1  # a reader: waits, then ingests what is left
    assert [r["log_id"] for r in got] == ["a"]


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("GATEWAY_REINJECT_PORT", "70000", "out of range"),
        ("GATEWAY_REINJECT_PORT", "abc", "whole number"),
        ("GATEWAY_DEBUG", "maybe", "true/false"),
        ("GATEWAY_CLAMD", "tcp:host", "tcp:HOST:PORT"),
        ("GATEWAY_DNS_SERVERS", "127.0.0.1:99999", "out of range"),
        ("GATEWAY_DATABASE_URL", "mysql://x/y", "scheme"),
        ("GATEWAY_MILTER_SOCKET", "tcp:1234", "inet:PORT@HOST"),
    ],
)
def test_it_rejects_bad_environment_values(monkeypatch: pytest.MonkeyPatch, var: str, value: str, words: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(envconfig.ConfigError) as e:
        envconfig.load()
    assert var in str(e.value) and words in str(e.value)


def test_it_reads_secrets_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = tmp_path / "url"
    f.write_text("postgres://bulwark:s3cret@db.internal/bulwark\n")
    monkeypatch.setenv("GATEWAY_DATABASE_URL_FILE", str(f))
    assert envconfig.load().database_url == "postgres://bulwark:s3cret@db.internal/bulwark"
    monkeypatch.setenv("GATEWAY_DNS_SERVERS", "127.0.0.1:5353,[::1]:53,10.0.0.2")
    assert envconfig.load().dns_servers == [("127.0.0.1", 5353), ("::1", 53), ("10.0.0.2", 53)]
    os.environ.pop("GATEWAY_DATABASE_URL_FILE", None)


def test_it_falls_back_when_the_stdlib_parser_crashes_on_a_header() -> None:
    from gateway_milter.context import ConnectionInfo, MessageContext
    from gateway_milter.policy.snapshot import PolicySnapshot

    ctx = MessageContext(ConnectionInfo(), PolicySnapshot.empty())
    ctx.add_header("Content-Type", "multipart/mixed; boundary*=utf-8''x; boundary*0=y")
    ctx.add_header("Subject", "crash me")
    ctx.body.write(b"--x\r\nhello\r\n")
    assert ctx.message["Subject"] == "crash me"
    assert b"hello" in ctx.message.get_payload().encode() if isinstance(ctx.message.get_payload(), str) \
        else b"hello" in ctx.message.get_payload()
