"""Quarantine pages: the list (user, domain and admin queues by role), a safe detail view,
single and bulk actions, and the digest confirmation page."""

from __future__ import annotations

from django.contrib import messages
from django.core import signing
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from quarantine import digests
from quarantine.actions import (
    ACTIONS,
    MAX_BULK,
    ActionError,
    ActionNotAllowed,
    check_action_allowed,
    do_quarantine_action,
    may_train,
)
from quarantine.preview import PREVIEW_CSP, view_message
from quarantine.services import read_message
from webadmin import access
from webadmin.guards import ADMINS, ANYONE, option, roles
from webadmin.models import Role


@roles(*ADMINS)
def landing(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    tasks = [{"url": reverse("quarantine:list"), "label": "User quarantine",
              "help": "Spam held for your users: release, delete, train."}]
    if p.is_global:
        tasks.append({"url": reverse("quarantine:list") + "?queue=admin", "label": "Admin quarantine",
                      "help": "Viruses, outbound and data-loss hits."})
    if p.is_global:
        tasks.append({"url": reverse("quarantine:mta_queue"), "label": "Postfix queue",
                      "help": "Mail the MTA still has to deliver, and why it waits."})
    tasks.append({"url": reverse("reports:log") + "?result=tempfail", "label": "Temporary failures",
                  "help": "Messages the gateway answered with 4xx."})
    return render(request, "landing.html", {"menu": "messages", "title": "Messages / Queues", "tasks": tasks,
                                            "intro": "Held messages and queues."})


@roles(Role.GLOBAL_ADMIN)
def mta_queue(request: HttpRequest) -> HttpResponse:
    """Postfix's queue (active, deferred, hold): what the MTA still has to deliver."""
    from quarantine.mtaqueue import QueueUnavailable, read_queue

    try:
        rows, error = read_queue(), ""
    except QueueUnavailable as e:
        rows, error = [], str(e)
    which = request.GET.get("queue", "")
    if which:
        rows = [r for r in rows if r.queue_name == which]
    return render(request, "quarantine/mta_queue.html", {"menu": "messages", "title": "Postfix queue",
                                                         "rows": rows, "error": error, "which": which})


@roles(*ANYONE)
@option("view_quarantine")
def quarantine_list(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    queue = request.GET.get("queue") or "user"
    if queue not in ("user", "admin") or queue == "admin" and not p.is_global:
        raise Http404("no such queue")
    status = request.GET.get("status") or "held"
    rcpts = access.quarantine_recipients_visible_to(request.user).filter(message__queue=queue)
    if status in ("held", "released", "deleted"):
        rcpts = rcpts.filter(status=status)
    q = (request.GET.get("q") or "").strip()[:200]
    if q:
        rcpts = (rcpts.filter(message__subject__icontains=q) | rcpts.filter(message__mail_from__icontains=q)
                 | rcpts.filter(address__icontains=q))
    rcpts = rcpts.select_related("message").order_by("-message__created", "-id")
    page = Paginator(rcpts, 50).get_page(request.GET.get("page"))
    return render(request, "quarantine/list.html", {
        "menu": "messages", "title": "Admin quarantine" if queue == "admin" else "Quarantine", "page": page,
        "queue": queue, "status": status, "q": q, "is_global": p.is_global, "actions": ACTIONS,
        "may_train": may_train(p)})


@roles(*ANYONE)
@option("view_quarantine")
def quarantine_detail(request: HttpRequest, pk: int) -> HttpResponse:
    qa = access.access_quarantined_message(request.user, pk)
    try:
        mv = view_message(read_message(qa.message))
    except (OSError, ValueError):
        mv = None
    return render(request, "quarantine/detail.html", {
        "menu": "messages", "title": qa.message.subject or "(no subject)", "qa": qa, "m": qa.message, "view": mv,
        "may_train": may_train(access.principal(request.user))})


@xframe_options_sameorigin
@roles(*ANYONE)
@option("view_quarantine")
def quarantine_preview(request: HttpRequest, pk: int) -> HttpResponse:
    qa = access.access_quarantined_message(request.user, pk)
    try:
        mv = view_message(read_message(qa.message))
    except (OSError, ValueError):
        raise Http404("message file missing") from None
    resp = render(request, "quarantine/preview.html", {"view": mv})
    resp["Content-Security-Policy"] = PREVIEW_CSP + "; sandbox"
    return resp


@roles(*ANYONE)
@option("view_quarantine")
def quarantine_source(request: HttpRequest, pk: int) -> HttpResponse:
    """The stored message as received, as a download (never rendered by the browser)."""
    qa = access.access_quarantined_message(request.user, pk)
    try:
        raw = read_message(qa.message)
    except (OSError, ValueError):
        raise Http404("message file missing") from None
    resp = HttpResponse(raw, content_type="application/octet-stream")
    resp["Content-Disposition"] = f'attachment; filename="{qa.message.qid}.eml"'  # qid is [0-9a-f]{32}
    resp["X-Content-Type-Options"] = "nosniff"
    resp["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


@require_POST
@roles(*ANYONE)
@option("view_quarantine")
def quarantine_action(request: HttpRequest, pk: int) -> HttpResponse:
    qa = access.access_quarantined_message(request.user, pk)
    action = request.POST.get("action", "")
    try:
        result = do_quarantine_action(access.principal(request.user), qa, action)
        messages.success(request, result.capitalize() + ".")
    except ActionNotAllowed:
        raise Http404("no such action") from None
    except ActionError as e:
        messages.error(request, str(e))
    return redirect("quarantine:detail", qa.message.pk)


@require_POST
@roles(*ANYONE)
@option("view_quarantine")
def quarantine_bulk(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    ids = request.POST.getlist("ids")
    p = access.principal(request.user)
    try:
        check_action_allowed(p, action)  # the whole request, before any row
    except ActionNotAllowed:
        raise Http404("no such action") from None
    done, failed = 0, 0
    if len(ids) > MAX_BULK:  # (the ids past the 500th were left out without a word)
        messages.error(request, f"At most {MAX_BULK} messages at a time: nothing was done.")
        ids = []
    for pk in ids:
        try:
            qa = access.access_quarantined_message(request.user, pk)
            do_quarantine_action(p, qa, action)
            done += 1
        except (Http404, ActionError):
            failed += 1
    if done:
        messages.success(request, f"{action.replace('_', ' ')}: {done} message(s).")
    if failed:
        messages.error(request, f"{failed} message(s) could not be processed.")
    return redirect(request.POST.get("back") if str(request.POST.get("back", "")).startswith("/messages/")
                    else "quarantine:list")


def digest_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET: confirmation page (no change). POST: the action, once."""
    try:
        link = digests.read_token(token)
    except signing.SignatureExpired:
        return render(request, "quarantine/digest_confirm.html", {"error": "This link has expired."}, status=410)
    except signing.BadSignature:
        raise Http404("invalid link") from None
    rcpt = digests.recipient_for(link)
    if rcpt is None:
        raise Http404("no such message")
    msg = rcpt.message
    ctx = {"link": link, "m": msg, "r": rcpt, "title": "Quarantined message"}
    if link.action == "view":
        try:
            ctx["view"] = view_message(read_message(msg))
        except (OSError, ValueError):
            ctx["view"] = None
    if request.method == "POST" and link.action in ("release", "release_allow"):
        from quarantine.actions import allow_sender
        from quarantine.services import ReleaseError, do_release_message
        from webadmin.access import Principal

        if rcpt.status != "held":
            ctx["done"] = f"This message was already {rcpt.status}."
        else:
            try:
                sent = do_release_message(msg, [rcpt.address], actor=f"digest:{rcpt.address}")
            except ReleaseError:
                ctx["error"] = "The message could not be released now; please try again later."
            else:
                if sent and link.action == "release_allow":
                    allow_sender(Principal(0, rcpt.address, Role.USER, addresses=frozenset({rcpt.address})),
                                 msg.mail_from, sent)
                ctx["done"] = "The message was released to your mailbox." if sent else "Nothing was released."
        rcpt.refresh_from_db()
    elif request.method not in ("GET", "HEAD", "POST"):
        return HttpResponse(status=405)
    ctx["r"] = rcpt
    return render(request, "quarantine/digest_confirm.html", ctx)
