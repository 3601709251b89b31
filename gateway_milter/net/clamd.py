"""A small clamd client: INSTREAM over TCP or a unix socket, with failover between servers.

Protocol (clamd(8)): ``zINSTREAM\\0``, then chunks ``<uint32 big-endian length><bytes>``, then
a zero-length chunk; the reply ends with ``\\0``: ``stream: OK``, ``stream: <Name> FOUND`` or
``<message> ERROR`` (``INSTREAM size limit exceeded``). We do not use the PyPI ``clamd``
package for scanning: over StreamMaxLength it raises a bare BrokenPipeError before reading
clamd's answer (docs/decisions/0031-clamd-client.md).

Servers come from ``GATEWAY_CLAMD`` (``tcp:127.0.0.1:3310,unix:/run/clamav/clamd.ctl``). A
server that cannot be reached (connect refused, time-out, reset before the reply) is skipped
for ``COOLDOWN_S`` and the next one is tried; when none answers, :class:`ClamdUnavailable` is
raised. A reply clamd gives (even ERROR) is an answer, not a reason to fail over.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

CHUNK = 256 * 1024
COOLDOWN_S = 10.0
DEFAULT_SERVERS = ("unix:/run/clamav/clamd.ctl",)


class ClamdError(Exception):
    """clamd gave no usable answer."""


class ClamdUnavailable(ClamdError):
    """No configured clamd server could be reached."""


@dataclass(frozen=True, slots=True)
class ClamdServer:
    kind: str  # "tcp" or "unix"
    address: str  # host or socket path
    port: int = 0

    @classmethod
    def parse(cls, spec: str) -> ClamdServer:
        spec = spec.strip()
        if spec.startswith("unix:"):
            path = spec[5:]
            if not path.startswith("/"):
                raise ValueError(f"clamd server {spec!r}: unix socket path must be absolute")
            return cls("unix", path)
        m = re.fullmatch(r"tcp:(\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(\d{1,5})", spec)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ValueError(f"clamd server {spec!r} is not tcp:HOST:PORT or unix:/PATH")
        return cls("tcp", m.group(1).strip("[]"), int(m.group(2)))

    def __str__(self) -> str:
        return f"unix:{self.address}" if self.kind == "unix" else f"tcp:{self.address}:{self.port}"

    def connect(self, timeout: float) -> socket.socket:
        if self.kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(self.address)
            except BaseException:
                s.close()
                raise
            return s
        return socket.create_connection((self.address, self.port), timeout=timeout)


@dataclass(frozen=True, slots=True)
class ScanReply:
    """``status``: ``clean``, ``infected`` or ``error`` (clamd answered ERROR, e.g. size limit)."""

    status: str
    signature: str = ""
    message: str = ""
    server: str = ""
    ms: float = 0.0

    @property
    def over_limit(self) -> bool:
        return self.status == "error" and "limit" in self.message.lower()


@dataclass(frozen=True, slots=True)
class ClamdVersion:
    engine: str  # "ClamAV 1.4.6"
    db_version: int | None  # daily.cvd version, None with only local signature files
    db_time: datetime | None
    server: str

    def db_age_s(self, now: datetime | None = None) -> float | None:
        if self.db_time is None:
            return None
        return ((now or datetime.now(UTC)) - self.db_time).total_seconds()


def parse_reply(text: str) -> tuple[str, str, str]:
    """(status, signature, message) from one clamd reply line."""
    text = text.strip()
    if text.endswith(" FOUND"):
        body = text[: -len(" FOUND")]
        sig = body.split(": ", 1)[1] if ": " in body else body
        return "infected", sig.strip(), text
    if text.endswith(": OK") or text == "OK":
        return "clean", "", text
    if text.endswith(" ERROR"):
        return "error", "", text
    raise ClamdError(f"unexpected clamd reply {text[:200]!r}")


def parse_version(text: str, server: str = "") -> ClamdVersion:
    """``ClamAV 1.4.6/27000/Thu Nov 27 09:27:02 2026`` (or just ``ClamAV 1.4.6``)."""
    bits = text.strip().split("/", 2)
    db_version = int(bits[1]) if len(bits) > 1 and bits[1].isdigit() else None
    db_time = None
    if len(bits) > 2:
        try:
            db_time = datetime.strptime(bits[2].strip(), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
        except ValueError:
            db_time = None
    return ClamdVersion(bits[0].strip(), db_version, db_time, server)


class ClamdClient:
    """Thread-safe; one per process (see :func:`default_client`)."""

    def __init__(self, servers: list[str] | tuple[str, ...], timeout: float = 30.0,
                 connect_timeout: float = 2.0) -> None:
        if not servers:
            raise ValueError("no clamd server configured")
        self.servers = [ClamdServer.parse(s) for s in servers]
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._down_until: dict[ClamdServer, float] = {}
        self._lock = threading.Lock()

    # -- server choice --------------------------------------------------------------------------
    def _order(self) -> list[ClamdServer]:
        now = time.monotonic()
        with self._lock:
            up = [s for s in self.servers if self._down_until.get(s, 0.0) <= now]
            down = [s for s in self.servers if s not in up]
        return up + down  # servers in cool-down are still tried, last

    def _mark(self, server: ClamdServer, ok: bool) -> None:
        with self._lock:
            if ok:
                self._down_until.pop(server, None)
            else:
                self._down_until[server] = time.monotonic() + COOLDOWN_S

    def _with_failover(self, op: str, fn: object, deadline: float | None) -> tuple[str, ClamdServer]:
        errors: list[str] = []
        for server in self._order():
            left = self.timeout if deadline is None else deadline - time.monotonic()
            if left <= 0:
                errors.append(f"{server}: time budget exhausted")
                break
            try:
                text = fn(server, min(left, self.timeout))  # type: ignore[operator]
            except (OSError, ClamdError) as e:
                self._mark(server, False)
                errors.append(f"{server}: {type(e).__name__}: {e}")
                continue
            self._mark(server, True)
            return text, server
        raise ClamdUnavailable(f"{op}: no clamd answered ({'; '.join(errors)})")

    # -- commands -------------------------------------------------------------------------------
    def _command(self, server: ClamdServer, timeout: float, cmd: bytes) -> str:
        with server.connect(min(timeout, self.connect_timeout)) as s:
            s.settimeout(timeout)
            s.sendall(b"z" + cmd + b"\0")
            return _read_reply(s)

    def _instream(self, server: ClamdServer, timeout: float, data: bytes) -> str:
        with server.connect(min(timeout, self.connect_timeout)) as s:
            s.settimeout(timeout)
            view = memoryview(data)
            try:
                s.sendall(b"zINSTREAM\0")
                for i in range(0, len(view), CHUNK):
                    part = view[i:i + CHUNK]
                    s.sendall(struct.pack("!L", len(part)))
                    s.sendall(part)
                s.sendall(struct.pack("!L", 0))
            except (BrokenPipeError, ConnectionResetError):
                pass  # over StreamMaxLength clamd answers and closes early: read its reply anyway
            return _read_reply(s)

    def ping(self, deadline: float | None = None) -> str:
        text, server = self._with_failover("PING", lambda sv, t: self._command(sv, t, b"PING"), deadline)
        if text != "PONG":
            raise ClamdError(f"{server}: PING answered {text!r}")
        return str(server)

    def version(self, deadline: float | None = None) -> ClamdVersion:
        text, server = self._with_failover("VERSION", lambda sv, t: self._command(sv, t, b"VERSION"), deadline)
        return parse_version(text, str(server))

    def scan(self, data: bytes, deadline: float | None = None) -> ScanReply:
        """Scan bytes with INSTREAM. Raises :class:`ClamdUnavailable` when no server answers."""
        t0 = time.perf_counter()
        text, server = self._with_failover("INSTREAM", lambda sv, t: self._instream(sv, t, data), deadline)
        status, sig, msg = parse_reply(text)
        return ScanReply(status, sig, msg, str(server), round((time.perf_counter() - t0) * 1000, 3))


def _read_reply(s: socket.socket) -> str:
    buf = b""
    while not buf.endswith(b"\0"):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > 64 * 1024:
            raise ClamdError("clamd reply too long")
    if not buf:
        raise ClamdError("connection closed without a reply")
    return buf.rstrip(b"\0").decode("utf-8", "replace").strip()


_default: dict[tuple[str, ...], ClamdClient] = {}
_default_lock = threading.Lock()


def client_for(servers: tuple[str, ...] | list[str], timeout: float = 30.0) -> ClamdClient:
    """A process-wide client per server list (keeps fail-over state between messages)."""
    key = tuple(servers) + (f"timeout={timeout}",)
    with _default_lock:
        c = _default.get(key)
        if c is None:
            c = _default[key] = ClamdClient(list(servers), timeout)
        return c


def configured_servers() -> list[str]:
    """Servers from GATEWAY_CLAMD (validated by gateway_milter.envconfig), or the Debian socket."""
    from gateway_milter import envconfig

    return list(envconfig.load().clamd) or list(DEFAULT_SERVERS)


def default_client(timeout: float = 30.0) -> ClamdClient:
    return client_for(tuple(configured_servers()), timeout)


def status(client: ClamdClient | None = None) -> dict[str, object]:
    """For the dashboard: every server's reachability, engine, signature DB version and age."""
    c = client or default_client()
    out: list[dict[str, object]] = []
    for server in c.servers:
        row: dict[str, object] = {"server": str(server)}
        try:
            text = c._command(server, c.connect_timeout, b"VERSION")
            v = parse_version(text, str(server))
            age = v.db_age_s()
            row.update(up=True, engine=v.engine, db_version=v.db_version,
                       db_time=v.db_time.isoformat() if v.db_time else None,
                       db_age_hours=round(age / 3600, 1) if age is not None else None)
        except (OSError, ClamdError) as e:
            row.update(up=False, error=f"{type(e).__name__}: {e}"[:200])
        out.append(row)
    return {"servers": out, "up": sum(1 for r in out if r.get("up"))}
