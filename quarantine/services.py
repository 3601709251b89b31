"""Quarantine actions: release (re-inject through the MTA listener without milters) and delete.

Re-injection goes to GATEWAY_REINJECT_HOST:GATEWAY_REINJECT_PORT, a Postfix smtpd with
``-o smtpd_milters=`` (docs/operations/postfix.md), so a released message is not filtered again.
"""

from __future__ import annotations

import logging
import smtplib
import sqlite3
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gateway_milter.store.quarantine import FilesystemQuarantineStore
from quarantine.models import QuarantinedMessage, QuarantineRecipient


log = logging.getLogger(__name__)


class ReleaseError(Exception):
    pass


def store() -> FilesystemQuarantineStore:
    return FilesystemQuarantineStore(settings.GATEWAY.quarantine_dir)


def read_message(msg: QuarantinedMessage) -> bytes:
    return store().read(msg.storage_path)


def release_sender(msg: QuarantinedMessage) -> str:
    """The envelope sender a release sends with. Outbound mail from a local domain is signed
    with BATV as the milter signs it on delivery (backscatter ``sign_outbound``): the held copy
    has the sender as written, and bounces of the released message to an unsigned sender would
    be refused as backscatter, so its sender would never hear of a failed delivery. The key
    store unreachable: the sender as written (the release itself must not fail for it)."""
    from gateway_milter.layers.backscatter import BackscatterSettings, sign
    from gateway_milter.store import StoreError, default_store
    from webadmin.services import current_snapshot

    sender = msg.mail_from or ""
    if msg.direction != "outbound" or "@" not in sender:
        return sender
    snap = current_snapshot()
    domain = snap.canonical_domain(sender.rpartition("@")[2])
    if domain is None:
        return sender
    s = snap.settings_for("backscatter", domain)
    if not isinstance(s, BackscatterSettings) or not s.enabled or not s.sign_outbound:
        return sender
    try:
        return sign(sender, default_store(), s.validity_days)
    except (StoreError, OSError, ValueError, sqlite3.Error) as e:
        log.warning("release of %s: BATV keys unreadable (%s); sent with the sender as written", msg.qid, e)
        return sender


def release_bytes(msg: QuarantinedMessage, rcpt_domain: str, raw: bytes) -> bytes:
    """The held copy as a release sends it: without the sender's X-Spam-* headers, which the
    milter removes on delivery (``scoring.remove_foreign_headers`` of the message's policy
    domain: the sender's for outbound mail, the recipient's otherwise). The copy was stored as
    it arrived, and the re-injection port passes no milter."""
    from gateway_milter.layers.scoring import ScoringSettings
    from gateway_milter.transforms.spamheaders import without_spam_headers
    from webadmin.services import current_snapshot

    sender = msg.mail_from or ""
    domain = sender.rpartition("@")[2] if msg.direction == "outbound" and "@" in sender else rcpt_domain
    s = current_snapshot().settings_for("scoring", domain)
    if isinstance(s, ScoringSettings) and not s.remove_foreign_headers:
        return raw
    return without_spam_headers(raw)


def do_release_message(msg: QuarantinedMessage, recipients: Iterable[str] | None = None, actor: str = "") -> list[str]:
    """Re-inject the stored message to the held recipients (all, or those given). Recipients
    already released are skipped, so a release link works once. Returns the addresses sent to."""
    with transaction.atomic():
        qs = QuarantineRecipient.objects.select_for_update().filter(message=msg, status="held")
        if recipients is not None:
            wanted = {r.lower() for r in recipients}
            held = [r for r in qs if r.address.lower() in wanted]
        else:
            held = list(qs)
        if not held:
            return []
        raw = release_bytes(msg, held[0].domain, read_message(msg))
        cfg = settings.GATEWAY
        sender = release_sender(msg)
        try:
            with smtplib.SMTP(cfg.reinject_host, cfg.reinject_port, timeout=30) as smtp:
                refused = smtp.sendmail(sender, [r.address for r in held], raw)
        except (OSError, smtplib.SMTPException) as e:
            raise ReleaseError(f"re-injection to {cfg.reinject_host}:{cfg.reinject_port} failed: {e}") from e
        sent = [r for r in held if r.address not in refused]
        now = timezone.now()
        for r in sent:
            r.status, r.released_at, r.released_by = "released", now, actor[:150]
        QuarantineRecipient.objects.bulk_update(sent, ["status", "released_at", "released_by"])
    return [r.address for r in sent]


def do_delete_message(msg: QuarantinedMessage, actor: str = "") -> None:
    """Delete the stored bytes and mark every held recipient deleted (metadata is kept for the log)."""
    with transaction.atomic():
        QuarantineRecipient.objects.filter(message=msg, status="held").update(status="deleted", released_by=actor[:150])
        store().delete(msg.storage_path)


def do_rescan_store() -> int:
    """Create missing rows from the store's metadata files (after a database restore)."""
    from gateway_milter.adapters.django_store import ingest_quarantine_rows

    rows = []
    for meta in store().scan():
        import datetime as dt

        rows.append((QuarantinedMessage(
            qid=meta["qid"], log_id=meta.get("log_id", ""), queue=meta.get("queue", "user"),
            created=dt.datetime.fromtimestamp(meta.get("created", 0), tz=dt.UTC),
            mail_from=meta.get("mail_from", ""), header_from=meta.get("header_from", ""),
            subject=meta.get("subject", ""), reason=meta.get("reason", ""), size=meta.get("size", 0),
            score=meta.get("score", 0.0), direction=meta.get("direction", ""), storage_path=meta["path"],
        ), list(meta.get("recipients", []))))
    return ingest_quarantine_rows(rows)
