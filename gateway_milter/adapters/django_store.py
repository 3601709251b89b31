"""Django-backed policy loader and message-log batch writer for the milter process.

Both run off the hot path: the loader in the policy-poll thread (one tiny query every
GATEWAY_POLICY_POLL seconds), the writer in the journal-ingest thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import close_old_connections, transaction

from gateway_milter import jsonio

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


LOG_COLUMNS = ("log_id", "time", "direction", "client_ip", "client_name", "helo", "auth_user", "mail_from",
               "header_from", "subject", "message_id", "queue_id", "size", "score", "action", "reason", "symbols",
               "trace", "transcript", "policy_version", "node")
RCPT_COLUMNS = ("message_id", "address", "domain", "action", "reply", "quarantine_id")
_TEXT_LIMITS = {"client_name": 255, "helo": 255, "auth_user": 255, "mail_from": 320, "header_from": 500,
                "subject": 500, "message_id": 500, "queue_id": 40, "reason": 500, "node": 100}
_JSON = ("symbols", "trace", "transcript")


def _log_row(r: dict[str, Any], adapt_dt: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    for col in LOG_COLUMNS:
        v = r.get(col)
        if col == "time":
            v = adapt_dt(_ts(float(v or 0)))
        elif col in _JSON:
            v = jsonio.dumps_str(v or [])
        elif col == "client_ip":
            v = v or None
        elif col in ("size", "policy_version"):
            v = int(v or 0)
        elif col == "score":
            v = float(v or 0.0)
        elif col == "direction":
            v = v or "inbound"
        elif col in _TEXT_LIMITS:
            v = (v or "")[: _TEXT_LIMITS[col]]
        out.append(v)
    return tuple(out)


def write_log_batch(records: list[dict[str, Any]]) -> None:
    """Idempotent: records whose log_id already exists are skipped (a replay after a crash).

    Rows are written with one ``executemany`` per table instead of ORM objects: the ORM's
    per-field preparation cost ~0.4 ms of CPU per record on the milter host (measured).
    """
    from django.db import connection

    from quarantine.models import QuarantinedMessage
    from reports.models import MessageLog, MessageRecipient

    close_old_connections()
    ids = [r["log_id"] for r in records]
    log_table, rcpt_table = MessageLog._meta.db_table, MessageRecipient._meta.db_table
    qn = connection.ops.quote_name
    adapt_dt = connection.ops.adapt_datetimefield_value
    with transaction.atomic():
        existing = set(MessageLog.objects.filter(log_id__in=ids).values_list("log_id", flat=True))
        fresh: list[dict[str, Any]] = []
        seen: set[str] = set()
        for r in records:
            if r["log_id"] not in existing and r["log_id"] not in seen:
                seen.add(r["log_id"])
                fresh.append(r)
        if not fresh:
            return
        cols = ", ".join(qn(c) for c in LOG_COLUMNS)
        marks = ", ".join(["%s"] * len(LOG_COLUMNS))
        with connection.cursor() as cur:
            cur.executemany(f"INSERT INTO {qn(log_table)} ({cols}) VALUES ({marks})",
                            [_log_row(r, adapt_dt) for r in fresh])
        by_id = dict(MessageLog.objects.filter(log_id__in=list(seen)).values_list("log_id", "id"))
        rcpt_rows: list[tuple[Any, ...]] = []
        qrows: list[tuple[QuarantinedMessage, list[str]]] = []
        for r in fresh:
            mid = by_id[r["log_id"]]
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
                rcpt_rows.append((mid, rc["address"][:320], rc.get("domain", "")[:253], rc["action"],
                                  rc.get("reply", "")[:500], qid_for.get(rc["address"], "")))
        if rcpt_rows:
            cols = ", ".join(qn(c) for c in RCPT_COLUMNS)
            with connection.cursor() as cur:
                cur.executemany(f"INSERT INTO {qn(rcpt_table)} ({cols}) VALUES ({', '.join(['%s'] * len(RCPT_COLUMNS))})",
                                rcpt_rows)
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
