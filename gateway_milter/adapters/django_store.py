"""Django-backed policy loader and message-log batch writer for the milter process.

Both run off the hot path: the loader in the policy-poll thread (one tiny query every
GATEWAY_POLICY_POLL seconds), the writer in the journal-ingest thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import close_old_connections, transaction

log = logging.getLogger("bulwark.adapter")


def load_published_policy(current_version: int) -> tuple[int, dict[str, Any]] | None:
    from webadmin.models import PublishedPolicy

    close_old_connections()
    row = PublishedPolicy.objects.only("version").order_by("-version").first()
    if row is None or row.version == current_version:
        return None
    full = PublishedPolicy.objects.get(pk=row.version)
    return full.version, full.document


def _ts(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC)


def write_log_batch(records: list[dict[str, Any]]) -> None:
    """Idempotent: records whose log_id already exists are skipped (a replay after a crash)."""
    from quarantine.models import QuarantinedMessage
    from reports.models import MessageLog, MessageRecipient

    close_old_connections()
    ids = [r["log_id"] for r in records]
    with transaction.atomic():
        existing = set(MessageLog.objects.filter(log_id__in=ids).values_list("log_id", flat=True))
        fresh = [r for r in records if r["log_id"] not in existing]
        seen: set[str] = set()
        rows = []
        for r in fresh:
            if r["log_id"] in seen:
                continue
            seen.add(r["log_id"])
            rows.append(MessageLog(
                log_id=r["log_id"], time=_ts(r["time"]), direction=r.get("direction", "inbound"),
                client_ip=r.get("client_ip") or None, client_name=r.get("client_name", "")[:255],
                helo=r.get("helo", "")[:255], auth_user=r.get("auth_user", "")[:255],
                mail_from=r.get("mail_from", "")[:320], header_from=r.get("header_from", "")[:500],
                subject=r.get("subject", "")[:500], message_id=r.get("message_id", "")[:500],
                queue_id=r.get("queue_id", "")[:40], size=r.get("size", 0), score=r.get("score", 0.0),
                action=r["action"], reason=r.get("reason", "")[:500], symbols=r.get("symbols", []),
                trace=r.get("trace", []), transcript=r.get("transcript", []),
                policy_version=r.get("policy_version", 0), node=r.get("node", "")[:100],
            ))
        MessageLog.objects.bulk_create(rows)
        by_id = dict(MessageLog.objects.filter(log_id__in=list(seen)).values_list("log_id", "id"))
        rcpts = []
        qrows: list[tuple[QuarantinedMessage, list[str]]] = []
        for r in fresh:
            mid = by_id.get(r["log_id"])
            if mid is None:
                continue
            qid_for: dict[str, str] = {}
            for q in r.get("quarantine", []):
                for a in q.get("recipients", []):
                    qid_for[a] = q["qid"]
                qrows.append((QuarantinedMessage(
                    qid=q["qid"], log_id=r["log_id"], queue=q.get("queue", "user"), created=_ts(q.get("created", r["time"])),
                    mail_from=q.get("mail_from", "")[:320], header_from=q.get("header_from", "")[:500],
                    subject=q.get("subject", "")[:500], reason=q.get("reason", "")[:500], size=q.get("size", 0),
                    score=q.get("score", 0.0), direction=q.get("direction", ""), storage_path=q["path"],
                ), list(q.get("recipients", []))))
            for rc in r.get("recipients", []):
                rcpts.append(MessageRecipient(
                    message_id=mid, address=rc["address"][:320], domain=rc.get("domain", "")[:253],
                    action=rc["action"], reply=rc.get("reply", "")[:500], quarantine_id=qid_for.get(rc["address"], ""),
                ))
        MessageRecipient.objects.bulk_create(rcpts)
        ingest_quarantine_rows(qrows)


def ingest_quarantine_rows(qrows: list[tuple[Any, list[str]]]) -> int:
    from quarantine.models import QuarantinedMessage, QuarantineRecipient

    if not qrows:
        return 0
    have = set(QuarantinedMessage.objects.filter(qid__in=[q.qid for q, _ in qrows]).values_list("qid", flat=True))
    new = [(q, rc) for q, rc in qrows if q.qid not in have]
    QuarantinedMessage.objects.bulk_create([q for q, _ in new])
    ids = dict(QuarantinedMessage.objects.filter(qid__in=[q.qid for q, _ in new]).values_list("qid", "id"))
    QuarantineRecipient.objects.bulk_create([
        QuarantineRecipient(message_id=ids[q.qid], address=a[:320], domain=a.rpartition("@")[2].lower()[:253])
        for q, rc in new for a in rc
    ])
    return len(new)


def build_gateway(config: Any) -> Any:
    """The process-wide Gateway for the milter or the scan CLI."""
    import socket as _socket

    from gateway_milter.pipeline.transaction import Gateway
    from gateway_milter.policy.provider import PollingPolicyProvider
    from gateway_milter.store.msglog import JournalLogSink
    from gateway_milter.store.quarantine import FilesystemQuarantineStore

    provider = PollingPolicyProvider(load_published_policy, config.policy_poll_s)
    return Gateway(provider, FilesystemQuarantineStore(config.quarantine_dir), JournalLogSink(config.journal_dir),
                   node=_socket.gethostname())
