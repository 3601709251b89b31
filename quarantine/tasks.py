"""Celery tasks (names are explicit: ``area.verb``): digests and retention."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.utils import timezone

log = logging.getLogger("bulwark.quarantine")


@shared_task(name="quarantine.send_digests")
def send_digests() -> int:
    """Send every user whose schedule is due a digest of their newly held messages. Idempotent:
    a user's ``digest_last_sent`` moves forward only after their mail is handed over."""
    from quarantine.digests import due, send_digest
    from webadmin.models import Account, Role

    now = timezone.now()
    sent = 0
    for acct in Account.objects.filter(role=Role.USER).exclude(digest_schedule="never").select_related("user"):
        if not acct.user.is_active or not due(acct, now):
            continue
        try:
            if send_digest(acct, now):
                sent += 1
        except Exception as e:  # noqa: BLE001 - one bad mailbox must not stop the others
            log.warning("digest for %s failed: %s", acct.mailbox, e)
    return sent


@shared_task(name="quarantine.purge_expired")
def purge_expired() -> int:
    """Delete quarantined messages older than the retention (bytes and rows)."""
    from quarantine.models import QuarantinedMessage
    from quarantine.services import store
    from webadmin.models import AdminSettings

    cutoff = timezone.now() - dt.timedelta(days=AdminSettings.get().quarantine_retention_days)
    n = 0
    st = store()
    for msg in QuarantinedMessage.objects.filter(created__lt=cutoff).only("pk", "storage_path").iterator(chunk_size=500):
        try:
            st.delete(msg.storage_path)
        except (OSError, ValueError) as e:
            log.warning("cannot delete %s: %s", msg.storage_path, e)
            continue
        msg.delete()
        n += 1
    return n
