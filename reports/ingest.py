"""Run the message-log journal ingestion from Django processes (CLI, worker, web)."""

from __future__ import annotations

from django.conf import settings

from gateway_milter.adapters.django_store import write_log_batch
from gateway_milter.store.msglog import JournalIngestor


def ingest_now(wait_s: float = 10.0) -> int:
    """Bring the message log up to date before reading it: when another process is ingesting
    right now, wait for it (up to ``wait_s``) rather than read a log missing its batch."""
    return JournalIngestor(settings.GATEWAY.journal_dir, write_log_batch).run_once(wait_s)


from celery import shared_task  # noqa: E402


@shared_task(name="msglog.ingest")
def ingest_task() -> int:
    """Periodic safety net: the milter ingests its own journal; this catches a stopped milter's."""
    return ingest_now(wait_s=0.0)
