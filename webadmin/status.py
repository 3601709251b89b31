"""Server status for the dashboard: each probe is short (<= 1 s), never raises, and the whole
result is cached for a few seconds so that a dashboard refresh storm does not probe services."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

PROBE_TIMEOUT_S = 1.0
MILTER_QUIET_AFTER = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # ok, bad, warn, unknown
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def server_status(use_cache: bool = True) -> list[ServiceStatus]:
    if use_cache:
        hit = cache.get("bulwark:status")
        if hit is not None:
            return [ServiceStatus(**s) for s in hit]
    out = [_database(), _milter(), _policy(), _postfix_queue(), _clamd(), _redis()]
    cache.set("bulwark:status", [s.as_dict() for s in out], 10)
    return out


def _database() -> ServiceStatus:
    try:
        with connection.cursor() as c:
            c.execute("SELECT 1")
        return ServiceStatus("Database", "ok", connection.vendor)
    except Exception as e:  # noqa: BLE001
        return ServiceStatus("Database", "bad", str(e)[:200])


def _milter() -> ServiceStatus:
    """Alive if its socket accepts a connection; the newest message-log row tells how recently
    it judged mail (a quiet gateway is a warning, not an error)."""
    from reports.models import MessageLog

    last = MessageLog.objects.order_by("-time").values_list("time", flat=True).first()
    seen = f"last message {timezone.localtime(last):%Y-%m-%d %H:%M}" if last else "no messages logged yet"
    sock = settings.GATEWAY.milter_socket
    up: bool | None = None
    m = re.match(r"^inet6?:(\d+)(?:@(.+))?$", sock)
    try:
        if m:
            with socket.create_connection((m.group(2) or "127.0.0.1", int(m.group(1))), timeout=PROBE_TIMEOUT_S):
                up = True
        elif sock.startswith(("unix:", "local:")):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(PROBE_TIMEOUT_S)
            try:
                s.connect(sock.split(":", 1)[1])
                up = True
            finally:
                s.close()
    except OSError:
        up = False
    if up:
        return ServiceStatus("Milter", "ok", f"listening on {sock}; {seen}")
    if last and timezone.now() - last < MILTER_QUIET_AFTER:
        return ServiceStatus("Milter", "ok", f"{seen} (socket {sock} not reachable from this host)")
    return ServiceStatus("Milter", "bad", f"not reachable on {sock}; {seen}")


def _policy() -> ServiceStatus:
    from reports.models import MessageLog
    from webadmin.models import PublishedPolicy

    pub = PublishedPolicy.objects.only("version", "created").order_by("-version").first()
    if pub is None:
        return ServiceStatus("Policy", "warn", "no policy published yet")
    used = MessageLog.objects.order_by("-time").values_list("policy_version", flat=True).first()
    if used is None:
        return ServiceStatus("Policy", "ok", f"version {pub.version} published")
    if used == pub.version:
        return ServiceStatus("Policy", "ok", f"milter runs version {used} (current)")
    return ServiceStatus("Policy", "warn", f"milter last used version {used}; version {pub.version} is published")


def _postfix_queue() -> ServiceStatus:
    from quarantine.mtaqueue import QueueUnavailable, postqueue_command

    try:
        cmd = postqueue_command()
        if not shutil.which(cmd[0]):
            return ServiceStatus("Postfix queue", "unknown", "postqueue not installed on this host")
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=3, check=False)
    except (QueueUnavailable, OSError, subprocess.TimeoutExpired) as e:
        return ServiceStatus("Postfix queue", "unknown", str(e)[:200])
    if res.returncode != 0:
        return ServiceStatus("Postfix queue", "unknown", (res.stderr or "postqueue failed").strip()[:200])
    n = sum(1 for line in res.stdout.splitlines() if line.strip())
    deferred = res.stdout.count('"queue_name": "deferred"')
    state = "ok" if n < 500 else "warn"
    return ServiceStatus("Postfix queue", state, f"{n} queued ({deferred} deferred)")


def _clamd() -> ServiceStatus:
    targets = settings.GATEWAY.clamd
    if not targets:
        return ServiceStatus("ClamAV", "unknown", "GATEWAY_CLAMD not set")
    for t in targets:
        try:
            if t.startswith("tcp:"):
                _, host, port = t.split(":")
                s = socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S)
            else:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(PROBE_TIMEOUT_S)
                s.connect(t.split(":", 1)[1])
            with s:
                s.sendall(b"zPING\0")
                reply = s.recv(32)
            if reply.startswith(b"PONG"):
                return ServiceStatus("ClamAV", "ok", f"{t} answers")
        except OSError:
            continue
    return ServiceStatus("ClamAV", "bad", f"no answer from {', '.join(targets)}")


def _redis() -> ServiceStatus:
    url = settings.GATEWAY.redis_url
    if not url:
        return ServiceStatus("Redis", "ok", "not used (embedded state store)")
    try:
        import redis

        r = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)
        r.ping()
        return ServiceStatus("Redis", "ok", "answers PING")
    except Exception as e:  # noqa: BLE001
        return ServiceStatus("Redis", "bad", str(e)[:200])
