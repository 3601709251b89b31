"""The clamd client against a small in-process INSTREAM server (the real clamd is in
tests/integration/av): protocol framing, replies, failover and the dashboard status."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway_milter.net.clamd import (
    ClamdClient,
    ClamdError,
    ClamdServer,
    ClamdUnavailable,
    parse_reply,
    parse_version,
    status,
)


class FakeClamd:
    """Speaks enough of clamd's protocol: zPING, zVERSION, zINSTREAM (framed chunks)."""

    def __init__(self, path: Path, verdict: Callable[[bytes], str]) -> None:
        self.path = path
        self.verdict = verdict
        self.received: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                cmd = b""
                while not cmd.endswith(b"\0"):
                    cmd += conn.recv(1)
                if cmd == b"zPING\0":
                    conn.sendall(b"PONG\0")
                elif cmd == b"zVERSION\0":
                    conn.sendall(b"ClamAV 1.4.6/27831/Fri Nov 27 08:00:00 2026\0")
                elif cmd == b"zINSTREAM\0":
                    data = b""
                    while True:
                        (n,) = struct.unpack("!L", _recv_exact(conn, 4))
                        if n == 0:
                            break
                        data += _recv_exact(conn, n)
                    self.received.append(data)
                    conn.sendall(self.verdict(data).encode() + b"\0")

    def close(self) -> None:
        self.sock.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeClamd]:
    srv = FakeClamd(tmp_path / "clamd.sock",
                    lambda d: "stream: Evil.Test FOUND" if b"EVIL" in d else "stream: OK")
    yield srv
    srv.close()


def test_it_frames_instream_and_reads_the_verdict(fake: FakeClamd) -> None:
    c = ClamdClient([f"unix:{fake.path}"])
    big = b"A" * 700_000 + b"EVIL"
    r = c.scan(big)
    assert r.status == "infected" and r.signature == "Evil.Test" and fake.received[-1] == big
    assert c.scan(b"hello").status == "clean"
    assert c.ping() == f"unix:{fake.path}"


def test_it_fails_over_to_the_next_server(fake: FakeClamd, tmp_path: Path) -> None:
    c = ClamdClient([f"unix:{tmp_path}/missing.sock", "tcp:127.0.0.1:1", f"unix:{fake.path}"], timeout=2)
    r = c.scan(b"EVIL")
    assert r.status == "infected" and r.server == f"unix:{fake.path}"
    # the dead servers are now in cool-down and tried last
    assert c._order()[0] == ClamdServer.parse(f"unix:{fake.path}")


def test_it_raises_when_no_server_answers(tmp_path: Path) -> None:
    c = ClamdClient([f"unix:{tmp_path}/a.sock", f"unix:{tmp_path}/b.sock"], timeout=1)
    with pytest.raises(ClamdUnavailable, match="no clamd answered"):
        c.scan(b"x")


def test_it_treats_a_size_limit_error_as_an_answer(tmp_path: Path) -> None:
    srv = FakeClamd(tmp_path / "s.sock", lambda d: "INSTREAM size limit exceeded. ERROR")
    try:
        r = ClamdClient([f"unix:{srv.path}"]).scan(b"x" * 10)
        assert r.status == "error" and r.over_limit
    finally:
        srv.close()


def test_it_parses_replies_and_versions() -> None:
    assert parse_reply("stream: Eicar-Test-Signature FOUND") == ("infected", "Eicar-Test-Signature",
                                                                  "stream: Eicar-Test-Signature FOUND")
    assert parse_reply("stream: OK")[0] == "clean"
    assert parse_reply("Can't allocate memory ERROR")[0] == "error"
    with pytest.raises(ClamdError):
        parse_reply("what?")
    v = parse_version("ClamAV 1.4.6/27831/Fri Nov 27 08:00:00 2026")
    assert v.engine == "ClamAV 1.4.6" and v.db_version == 27831
    assert v.db_age_s(datetime(2026, 11, 28, 8, 0, tzinfo=UTC)) == 86400
    assert parse_version("ClamAV 1.4.6").db_version is None


@pytest.mark.parametrize("spec", ["tcp:host", "tcp:h:0", "unix:relative", "udp:1.2.3.4:5", "tcp:h:99999"])
def test_it_rejects_bad_server_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        ClamdServer.parse(spec)


def test_it_reports_status_for_the_dashboard(fake: FakeClamd, tmp_path: Path) -> None:
    st = status(ClamdClient([f"unix:{fake.path}", f"unix:{tmp_path}/down.sock"]))
    up, down = st["servers"]  # type: ignore[misc]
    assert st["up"] == 1 and up["db_version"] == 27831 and up["db_age_hours"] is not None
    assert down["up"] is False and "error" in down
