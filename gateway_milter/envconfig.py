"""GATEWAY_* environment settings with strict parsers.

Every variable is documented in docs/operations/settings.md. A bad value stops the process
with a message naming the variable; ``NAME_FILE`` may hold a secret instead of ``NAME``.
With nothing set, everything runs embedded under GATEWAY_DATA_DIR (default ./var).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    pass


def _raw(name: str) -> str | None:
    file_var = os.environ.get(name + "_FILE")
    if file_var:
        try:
            return Path(file_var).read_text().strip()
        except OSError as e:
            raise ConfigError(f"{name}_FILE: cannot read {file_var}: {e.strerror}") from None
    return os.environ.get(name)


def env_str(name: str, default: str = "") -> str:
    v = _raw(name)
    return default if v is None or v == "" else v


def env_bool(name: str, default: bool = False) -> bool:
    v = _raw(name)
    if v is None or v == "":
        return default
    low = v.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true/false, got {v!r}")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    v = _raw(name)
    if v is None or v == "":
        return default
    try:
        n = int(v.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {v!r}") from None
    if minimum is not None and n < minimum or maximum is not None and n > maximum:
        raise ConfigError(f"{name}: {n} is out of range [{minimum}, {maximum}]")
    return n


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    v = _raw(name)
    if v is None or v == "":
        return default
    try:
        n = float(v.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {v!r}") from None
    if n < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}")
    return n


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    v = _raw(name)
    if v is None or v.strip() == "":
        return list(default or [])
    return [p.strip() for p in v.split(",") if p.strip()]


def env_hostports(name: str, default_port: int) -> list[tuple[str, int]]:
    """``127.0.0.1:5353,[::1]:53,10.0.0.2`` -> [(host, port), ...]"""
    out = []
    for item in env_list(name):
        m = re.match(r"^\[([0-9a-fA-F:.]+)\](?::(\d+))?$|^([^:\[\]]+)(?::(\d+))?$", item)
        if not m:
            raise ConfigError(f"{name}: {item!r} is not host[:port]")
        host = m.group(1) or m.group(3)
        port = int(m.group(2) or m.group(4) or default_port)
        if not 0 < port < 65536:
            raise ConfigError(f"{name}: port {port} out of range in {item!r}")
        out.append((host, port))
    return out


def env_url(name: str, schemes: tuple[str, ...]) -> str:
    v = env_str(name)
    if not v:
        return ""
    u = urlparse(v)
    if u.scheme not in schemes:
        raise ConfigError(f"{name}: scheme must be one of {', '.join(schemes)}, got {u.scheme!r}")
    if u.scheme not in ("sqlite",) and not u.hostname and not u.path:
        raise ConfigError(f"{name}: {v!r} has no host")
    return v


@dataclass(frozen=True)
class GatewayConfig:
    data_dir: Path
    database_url: str
    redis_url: str
    dns_servers: list[tuple[str, int]]
    dns_timeout: float
    clamd: list[str]
    reinject_host: str
    reinject_port: int
    milter_socket: str
    policy_poll_s: float
    hostname: str
    debug: bool
    milter_ingest: bool
    bayes_backups: int = 7  # daily Bayes backups kept under data_dir/backups (0: none)

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def backup_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def journal_dir(self) -> Path:
        return self.data_dir / "msglog"

    @property
    def embedded(self) -> bool:
        return not self.redis_url


def data_dir() -> Path:
    """GATEWAY_DATA_DIR (default ./var), absolute: where everything embedded lives."""
    return Path(env_str("GATEWAY_DATA_DIR", str(BASE_DIR / "var"))).resolve()


def load() -> GatewayConfig:
    base = data_dir()
    clamd = env_list("GATEWAY_CLAMD")
    for c in clamd:
        if not re.match(r"^(tcp:([^:\[\]]+|\[[0-9a-fA-F:.]+\]):\d+|unix:/.+)$", c):
            raise ConfigError(f"GATEWAY_CLAMD: {c!r} is not tcp:HOST:PORT, tcp:[IPV6]:PORT or unix:/PATH")
    sock = env_str("GATEWAY_MILTER_SOCKET", "inet:8891@127.0.0.1")
    if not re.match(r"^(inet6?:\d+(@.+)?|unix:/.+|local:/.+)$", sock):
        raise ConfigError(f"GATEWAY_MILTER_SOCKET: {sock!r} is not inet:PORT@HOST or unix:/PATH")
    return GatewayConfig(
        data_dir=base,
        database_url=env_url("GATEWAY_DATABASE_URL", ("postgres", "postgresql", "sqlite")),
        redis_url=env_url("GATEWAY_REDIS_URL", ("redis", "rediss", "unix")),
        dns_servers=env_hostports("GATEWAY_DNS_SERVERS", 53),
        dns_timeout=env_float("GATEWAY_DNS_TIMEOUT", 3.0, 0.1),
        clamd=clamd,
        reinject_host=env_str("GATEWAY_REINJECT_HOST", "127.0.0.1"),
        reinject_port=env_int("GATEWAY_REINJECT_PORT", 10026, 1, 65535),
        milter_socket=sock,
        policy_poll_s=env_float("GATEWAY_POLICY_POLL", 2.0, 0.1),
        hostname=env_str("GATEWAY_HOSTNAME", "bulwark.localdomain"),
        debug=env_bool("GATEWAY_DEBUG", False),
        milter_ingest=env_bool("GATEWAY_MILTER_INGEST", True),
        bayes_backups=env_int("GATEWAY_BAYES_BACKUPS", 7, 0, 366),
    )
