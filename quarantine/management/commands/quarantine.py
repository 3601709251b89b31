"""``manage.py quarantine list|release QID|delete QID|rescan``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from quarantine.models import QuarantinedMessage
from quarantine.services import ReleaseError, do_delete_message, do_release_message, do_rescan_store


class Command(BaseCommand):
    help = "List, release or delete quarantined messages."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("list")
        ls.add_argument("--queue", choices=["user", "admin"])
        ls.add_argument("--all", action="store_true", help="include released and deleted messages")
        rel = sub.add_parser("release")
        rel.add_argument("qid")
        rel.add_argument("--rcpt", action="append", help="release to these recipients only")
        de = sub.add_parser("delete")
        de.add_argument("qid")
        sub.add_parser("rescan", help="rebuild missing rows from the store")

    def _get(self, qid: str) -> QuarantinedMessage:
        try:
            return QuarantinedMessage.objects.get(qid=qid)
        except QuarantinedMessage.DoesNotExist:
            raise CommandError(f"no quarantined message {qid}") from None

    def handle(self, *args: Any, **o: Any) -> None:
        from reports.ingest import ingest_now

        ingest_now()
        a = o["action"]
        if a == "list":
            qs = QuarantinedMessage.objects.prefetch_related("recipients")
            if o["queue"]:
                qs = qs.filter(queue=o["queue"])
            for m in qs:
                rc = [r for r in m.recipients.all() if o["all"] or r.status == "held"]
                if not rc:
                    continue
                rcpts = ",".join(f"{r.address}({r.status})" for r in rc)
                self.stdout.write(f"{m.qid}  {m.created:%Y-%m-%d %H:%M}  {m.queue:5}  from={m.mail_from or '<>'}  "
                                  f"to={rcpts}  subject={m.subject[:60]!r}  reason={m.reason}")
        elif a == "release":
            try:
                sent = do_release_message(self._get(o["qid"]), o["rcpt"], actor="cli")
            except ReleaseError as e:
                raise CommandError(str(e)) from None
            if not sent:
                raise CommandError("nothing to release (already released or deleted)")
            self.stdout.write(f"released to {', '.join(sent)}")
        elif a == "delete":
            do_delete_message(self._get(o["qid"]), actor="cli")
            self.stdout.write("deleted")
        else:
            self.stdout.write(f"{do_rescan_store()} message(s) restored from the store")
