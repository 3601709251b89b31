"""``manage.py postfix maps [--dir DIR] [--postmap]``: write Postfix ``relay_domains`` and
``transport`` maps from the domains and their mail servers (docs/operations/postfix.md).

relay_domains lists every domain and alias domain (``example.com OK``); transport routes each
to its first mail server without an MX lookup (``example.com smtp:[mx.internal]:25``); further
servers are written as comments, since a transport entry names one next hop (for fail-over
give the domain a host name with several A records). Files are written atomically;
``--postmap`` runs ``postmap`` on them (fixed argument list, no shell).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webadmin.models import Domain

HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$")


def _route(server: str) -> str:
    m = HOST_RE.match(server.strip())
    if not m:
        raise CommandError(f"mail server {server!r} is not host[:port]")
    host, port = m.group(1), m.group(2)
    if not host.startswith("["):
        host = f"[{host}]"  # no MX lookup: deliver to exactly this host
    return f"smtp:{host}:{port or 25}"


def build_maps() -> tuple[str, str]:
    relay, transport = [], []
    for d in Domain.objects.order_by("name"):
        names = [d.name, *d.aliases]
        for n in names:
            relay.append(f"{n}\tOK")
        if d.mail_servers:
            first, *rest = d.mail_servers
            for n in names:
                transport.append(f"{n}\t{_route(first)}")
            for r in rest:
                transport.append(f"# {d.name} fallback: {_route(r)}")
    head = "# Written by `manage.py postfix maps`; edit domains in the web admin, not here.\n"
    return head + "\n".join(relay) + "\n", head + "\n".join(transport) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class Command(BaseCommand):
    help = "Write Postfix relay_domains and transport maps from the configured domains."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        maps = sub.add_parser("maps")
        maps.add_argument("--dir", default="/etc/postfix/bulwark", help="directory for the map files")
        maps.add_argument("--postmap", action="store_true", help="run postmap on the written files")

    def handle(self, *args: Any, **opts: Any) -> None:
        out = Path(opts["dir"])
        out.mkdir(parents=True, exist_ok=True)
        relay, transport = build_maps()
        for name, text in (("relay_domains", relay), ("transport", transport)):
            _write_atomically(out / name, text)
            self.stdout.write(f"wrote {out / name}")
            if opts["postmap"]:
                exe = shutil.which("postmap") or "/usr/sbin/postmap"
                res = subprocess.run([exe, f"hash:{out / name}"], capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    raise CommandError(f"postmap {out / name} failed: {res.stderr.strip()}")
