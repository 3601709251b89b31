"""``manage.py msglog ingest`` (journal -> database now) and ``msglog show [--json] [--last N]``."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from reports.ingest import ingest_now
from reports.models import MessageLog


class Command(BaseCommand):
    help = "Ingest the message-log journal into the database, or show the newest records."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["ingest", "show"])
        parser.add_argument("--last", type=int, default=20)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        n = ingest_now()
        if o["action"] == "ingest":
            self.stdout.write(f"{n} record(s) ingested")
            return
        rows = list(MessageLog.objects.prefetch_related("recipients").order_by("-time", "-id")[: o["last"]])
        for m in reversed(rows):
            rcpts = [{"address": r.address, "action": r.action, "reply": r.reply, "quarantine_id": r.quarantine_id}
                     for r in m.recipients.all()]
            if o["json"]:
                self.stdout.write(json.dumps({
                    "log_id": m.log_id, "time": m.time.isoformat(), "direction": m.direction, "client_ip": m.client_ip,
                    "helo": m.helo, "mail_from": m.mail_from, "header_from": m.header_from, "subject": m.subject,
                    "message_id": m.message_id, "size": m.size, "score": m.score, "action": m.action,
                    "reason": m.reason, "symbols": m.symbols, "trace": m.trace, "transcript": m.transcript,
                    "recipients": rcpts, "queue_id": m.queue_id}))
            else:
                to = ", ".join(f"{r['address']}:{r['action']}" for r in rcpts)
                self.stdout.write(f"{m.time:%Y-%m-%d %H:%M:%S} {m.action:10} {m.direction:8} "
                                  f"from=<{m.mail_from}> to={to} score={m.score:.1f} {m.reason}")
