"""Celery tasks (names are explicit: ``area.verb``): message-log ingestion, retention and the
cached dashboard roll-up."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone


@shared_task(name="reports.rollup")
def rollup() -> int:
    """Pre-compute the dashboard charts of every active administrator into the cache, so that
    opening the dashboard does not aggregate the log. Useful when CACHES is a shared cache
    (Redis); with the default per-process cache it only warms the worker's own. Returns the
    number of accounts done."""
    from reports.charts import CACHE_SECONDS, dashboard_charts
    from webadmin.access import message_recipients_visible_to, messages_visible_to
    from webadmin.models import Account, Role

    from django.core.cache import cache

    n = 0
    for acct in Account.objects.exclude(role=Role.USER).select_related("user"):
        if acct.user.is_active:
            charts = dashboard_charts(messages_visible_to(acct.user),
                                      recipients=message_recipients_visible_to(acct.user))
            cache.set(f"bulwark:charts:{acct.user_id}", charts, CACHE_SECONDS * 5)
            n += 1
    return n


@shared_task(name="reports.purge_log")
def purge_log() -> int:
    """Delete message-log rows older than the retention, in chunks (no long lock)."""
    from reports.models import MessageLog
    from webadmin.models import AdminSettings

    cutoff = timezone.now() - dt.timedelta(days=AdminSettings.get().log_retention_days)
    total = 0
    while True:
        ids = list(MessageLog.objects.filter(time__lt=cutoff).order_by("time").values_list("id", flat=True)[:5000])
        if not ids:
            return total
        MessageLog.objects.filter(id__in=ids).delete()
        total += len(ids)


@shared_task(name="reports.autocreate_users")
def autocreate_users(hours: int = 1) -> int:
    """Create users for verified local recipients seen in recent mail (first verified mail)."""
    from reports.models import MessageRecipient
    from webadmin.models import Account, Domain
    from webadmin.services import do_autocreate_user

    since = timezone.now() - dt.timedelta(hours=hours)
    domains = set(Domain.objects.filter(verification_sources__auto_create=True, verification_sources__enabled=True)
                  .values_list("name", flat=True))
    if not domains:
        return 0
    known = set(Account.objects.values_list("mailbox", flat=True))
    seen = (MessageRecipient.objects.filter(message__time__gte=since, domain__in=domains, action="accept")
            .values_list("address", flat=True).distinct()[:1000])
    return sum(1 for a in seen if a.lower() not in known and do_autocreate_user(a) is not None)
