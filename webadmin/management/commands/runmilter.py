"""``manage.py runmilter --socket inet:PORT@127.0.0.1|unix:/path``: the milter daemon."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from gateway_milter.front.supervisor import Supervisor


class Command(BaseCommand):
    help = "Run the gateway milter (SIGHUP reloads the policy, SIGTERM stops cleanly)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--socket", default=None, help="inet:PORT@HOST or unix:/path (default GATEWAY_MILTER_SOCKET)")
        parser.add_argument("--timeout", type=int, default=600, help="libmilter I/O timeout in seconds")

    def handle(self, *args: Any, **o: Any) -> None:
        sock = o["socket"] or settings.GATEWAY.milter_socket
        raise SystemExit(Supervisor(sock, o["timeout"]).run())
