"""The Postfix queue as the gateway's MTA holds it: ``postqueue -j`` (one JSON object per
message, Postfix >= 3.1; postqueue(1)). Read-only: changing the queue needs postsuper as root,
which the web process never is."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class QueuedMessage:
    queue_id: str
    queue_name: str
    arrival: dt.datetime
    size: int
    sender: str
    recipients: tuple[tuple[str, str], ...]  # (address, delay reason)


class QueueUnavailable(RuntimeError):
    pass


def parse_postqueue_json(text: str) -> list[QueuedMessage]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            o = json.loads(line)
            out.append(QueuedMessage(
                queue_id=str(o["queue_id"]), queue_name=str(o.get("queue_name", "")),
                arrival=dt.datetime.fromtimestamp(int(o.get("arrival_time", 0)), tz=dt.UTC),
                size=int(o.get("message_size", 0)), sender=str(o.get("sender", "")),
                recipients=tuple((str(r.get("address", "")), str(r.get("delay_reason", "")))
                                 for r in o.get("recipients", []) if isinstance(r, dict))))
        except (ValueError, KeyError, TypeError):
            continue  # a line we do not understand is skipped, never fatal
    return out


def postqueue_command() -> list[str]:
    """``postqueue -j``, with ``-c DIR`` when ``GATEWAY_POSTFIX_CONFIG_DIR`` names the Postfix
    instance's configuration directory (the run command's private instance; default: the
    system's /etc/postfix). Fixed arguments: no shell, no message data."""
    from gateway_milter import envconfig

    exe = shutil.which("postqueue") or "/usr/sbin/postqueue"
    conf = envconfig.env_str("GATEWAY_POSTFIX_CONFIG_DIR")
    if conf and not (conf.startswith("/") and Path(conf).is_dir()):
        raise QueueUnavailable(f"GATEWAY_POSTFIX_CONFIG_DIR {conf[:200]!r} is not a directory (an absolute path)")
    return [exe, *(["-c", conf] if conf else []), "-j"]


def read_queue(limit: int = 500) -> list[QueuedMessage]:
    cmd = postqueue_command()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise QueueUnavailable(str(e)) from e
    if res.returncode != 0:
        raise QueueUnavailable((res.stderr or "postqueue failed").strip()[:300])
    return sorted(parse_postqueue_json(res.stdout), key=lambda m: m.arrival, reverse=True)[:limit]
