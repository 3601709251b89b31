"""Logging and Reports: message-log search (keyset pages, CSV export), the detail page with
per-recipient results, trace, transcript, headers and a safe preview, and the charts."""

from __future__ import annotations

import csv
import datetime as dt

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from gateway_milter.layers.base import SettingsError
from reports.charts import charts_for
from reports.logactions import NO_LIST_DOMAIN, of_domains
from reports.search import LogQuery, SearchError
from webadmin import access
from webadmin.guards import ADMINS, ANYONE, option, roles
from webadmin.models import Domain

CSV_MAX_ROWS = 100_000
CSV_COLUMNS = ("time", "log_id", "direction", "client_ip", "mail_from", "recipients", "subject", "action", "reason",
               "score", "size")


@roles(*ADMINS)
def logging_landing(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    day = (now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    base = reverse("reports:log")
    tasks = [
        {"url": base, "label": "Message log", "help": "Search every message the gateway judged."},
        {"url": f"{base}?result=junk&since={day}", "label": "Junk in the last 24 hours",
         "help": "Rejected, quarantined and discarded."},
        {"url": f"{base}?result=tempfail", "label": "Temporary failures", "help": "Messages answered with 4xx."},
        {"url": f"{base}?direction=outbound", "label": "Outbound mail", "help": "Mail your users sent."},
        {"url": reverse("reports:log_export"), "label": "Export CSV", "help": "Download the log (up to 100,000 rows)."},
    ]
    return render(request, "landing.html", {"menu": "logging", "title": "Logging", "tasks": tasks,
                                            "intro": "What happened to every message, and why."})


def _query(request: HttpRequest) -> tuple[LogQuery, str]:
    try:
        return LogQuery.from_params(request.GET), ""
    except SearchError as e:
        return LogQuery(), str(e)


@roles(*ANYONE)
@option("view_log")
def log_search(request: HttpRequest) -> HttpResponse:
    q, error = _query(request)
    qs = access.messages_visible_to(request.user)
    log_id = (request.GET.get("log_id") or "").strip()[:32]
    if log_id:
        qs = qs.filter(log_id=log_id)
    rows, nxt = [], ""
    if not error:
        try:
            rows, nxt = q.page(qs.prefetch_related("recipients"))
        except SearchError as e:
            error = str(e)
    p = access.principal(request.user)
    for r in rows:
        r.shown_recipients = access.recipients_visible_to(request.user, r)
    params = request.GET.copy()
    params.pop("cursor", None)
    first_page = params.urlencode()
    params["cursor"] = nxt
    return render(request, "reports/log.html", {
        "menu": "logging", "title": "Message log", "rows": rows, "q": q, "error": error,
        "next_url": "?" + params.urlencode() if nxt else "", "first_url": "?" + first_page,
        "on_later_page": bool(q.cursor), "export_url": reverse("reports:log_export") + "?" + first_page,
        "domains": access.domains_visible_to(request.user) if p.is_admin else [],
        "form_since": q.since.strftime("%Y-%m-%dT%H:%M") if q.since else "",
        "form_until": q.until.strftime("%Y-%m-%dT%H:%M") if q.until else ""})


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_safe(v: object) -> str:
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


@roles(*ANYONE)
@option("view_log")
def log_export(request: HttpRequest) -> HttpResponse:
    q, error = _query(request)
    if error:
        messages.error(request, error)
        return redirect("reports:log")
    qs = q.apply(access.messages_visible_to(request.user)).order_by("-time", "-id").defer(
        "trace", "transcript", "symbols")
    user = request.user
    w = csv.writer(_Echo())

    def gen():  # type: ignore[no-untyped-def]
        yield w.writerow(CSV_COLUMNS)
        for m in qs.prefetch_related("recipients")[:CSV_MAX_ROWS].iterator(chunk_size=1000):
            rc = " ".join(r.address for r in access.recipients_visible_to(user, m))
            yield w.writerow([csv_safe(x) for x in (m.time.isoformat(), m.log_id, m.direction, m.client_ip, m.mail_from,
                                                    rc, m.subject, m.action, m.reason, m.score, m.size)])

    resp = StreamingHttpResponse(gen(), content_type="text/csv; charset=utf-8")
    resp["Content-Disposition"] = 'attachment; filename="bulwark-message-log.csv"'
    resp["X-Content-Type-Options"] = "nosniff"
    return resp


@roles(*ANYONE)
@option("view_log")
def log_detail(request: HttpRequest, pk: int) -> HttpResponse:
    m = access.access_message(request.user, pk)
    rcpts = access.recipients_visible_to(request.user, m)
    qids = [r.quarantine_id for r in rcpts if r.quarantine_id]
    qmsg = None
    if qids:
        qmsg = access.quarantine_visible_to(request.user).filter(qid__in=qids).first()
    view = None
    if qmsg is not None:
        from quarantine.preview import view_message
        from quarantine.services import read_message

        try:
            view = view_message(read_message(qmsg))
        except (OSError, ValueError):
            view = None
    p = access.principal(request.user)
    return render(request, "reports/detail.html", {
        "menu": "logging", "title": m.subject or "(no subject)", "m": m, "recipients": rcpts, "qmsg": qmsg,
        "trace": access.visible_trace(request.user, m), "symbols": access.visible_symbols(request.user, m),
        "transcript": access.visible_transcript(request.user, m),
        "view": view, "show_transcript": access.may_view_transcript(request.user), "may_act": p.manages_settings,
        "may_train": p.is_admin, "may_score_rules": p.is_global})


@require_POST
@roles(*ADMINS)
def log_action(request: HttpRequest, pk: int) -> HttpResponse:
    from quarantine.actions import train, training_scopes
    from webadmin.services import do_add_list_entry

    m = access.access_message(request.user, pk)
    p = access.principal(request.user)
    action = request.POST.get("action", "")
    if action in ("spam", "ham"):
        rcpts = access.recipients_visible_to(request.user, m)
        qids = [r.quarantine_id for r in rcpts if r.quarantine_id]
        ok = train(sorted(set(qids)), action == "spam", p.username,
                   training_scopes(p, [r.address for r in rcpts], m.mail_from))
        (messages.success if ok else messages.error)(
            request, ("Queued for training as " if ok else "Could not train (no stored copy, or the task "
                                                           "queue is unavailable) as ")
            + ("spam." if action == "spam" else "not spam."))
    elif action in ("allow", "block") and p.manages_settings and m.mail_from:
        doms: list[Domain | None]
        if p.is_global:
            doms = [None]
        else:
            names = {r.domain for r in access.recipients_visible_to(request.user, m)} & p.domains
            doms = list(Domain.objects.filter(name__in=names))
        if not doms:  # (its own domain's outbound mail: no recipient of theirs, no list to add to)
            messages.error(request, NO_LIST_DOMAIN)
            return redirect("reports:detail", m.pk)
        try:
            for d in doms:
                do_add_list_entry(action, "sender", m.mail_from, d, comment=f"from message {m.log_id}",
                                  actor=p.username)
            messages.success(request, f"{m.mail_from} added to the {action} list{of_domains(doms)}.")
        except SettingsError as e:
            messages.error(request, e.message)
    else:
        messages.error(request, "Unknown action.")
    return redirect("reports:detail", m.pk)


@roles(*ADMINS)
def reports_landing(request: HttpRequest) -> HttpResponse:
    from reports.charts import domain_summaries

    from django.core.cache import cache

    hours = 168 if request.GET.get("period") == "7d" else 24
    key = f"bulwark:domsum:{request.user.pk}:{hours}"
    summaries = cache.get(key)
    if summaries is None:
        domains = list(access.domains_visible_to(request.user).values_list("name", flat=True)[:500])
        summaries = domain_summaries(domains, hours, all_domains=access.principal(request.user).is_global)
        cache.set(key, summaries, 300)
    return render(request, "reports/landing.html", {
        "menu": "reports", "title": "Reports", "charts": charts_for(request.user), "hours": hours,
        "summaries": summaries})


