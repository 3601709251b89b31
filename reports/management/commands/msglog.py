"""``manage.py msglog ingest``: move journal records into the database now."""

from typing import Any

from django.core.management.base import BaseCommand

from reports.ingest import ingest_now


class Command(BaseCommand):
    help = "Ingest the message-log journal into the database."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["ingest"])

    def handle(self, *args: Any, **o: Any) -> None:
        self.stdout.write(f"{ingest_now()} record(s) ingested")
