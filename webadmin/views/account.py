"""My Account: a user's own charts, quarantine, message log, lists and settings; and the
personal REST API token of any account."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token

from gateway_milter.layers.base import SettingsError
from reports.charts import charts_for
from webadmin import access, services
from webadmin.forms import MySettingsForm
from webadmin.guards import ANYONE, roles
from webadmin.models import Account, Role


@roles(Role.USER)
def my_account(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    ctx = {"menu": "account", "title": "My Account", "addresses": sorted(p.addresses), "options": p.options,
           "held": access.quarantine_recipients_visible_to(request.user).filter(status="held").count(),
           "charts": [c for c in charts_for(request.user)
                      if c.key in ("traffic", "goodjunk", "junk", "spamdomains")] if p.may("view_log") else []}
    return render(request, "webadmin/my_account.html", ctx)


@roles(Role.USER)
def my_lists(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    if not p.may("manage_lists"):
        raise Http404("no such page")
    if request.method == "POST":
        kind = request.POST.get("list")
        value = (request.POST.get("value") or "").strip()
        if kind not in ("allow", "block"):
            messages.error(request, "Choose allow or block.")
        else:
            try:
                services.do_add_user_list_entry(Account.objects.get(user=request.user), kind, value)
                messages.success(request, f"{value} added to your {kind} list.")
            except SettingsError as e:
                messages.error(request, e.message)
        return redirect("webadmin:my_lists")
    return render(request, "webadmin/my_lists.html", {"menu": "lists", "title": "My lists",
                                                      "entries": access.user_list_entries_visible_to(request.user)})


@require_POST
@roles(Role.USER)
def my_list_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.do_delete_user_list_entry(access.access_user_list_entry(request.user, pk))
    return redirect("webadmin:my_lists")


@roles(Role.USER)
def my_settings(request: HttpRequest) -> HttpResponse:
    acct = Account.objects.get(user=request.user)
    p = access.principal(request.user)
    form = MySettingsForm(request.POST or None, initial={
        "digest_schedule": acct.digest_schedule, "digest_every_hours": acct.digest_every_hours,
        "disable_antispam": bool(acct.options.get("antispam_off"))})
    if not p.options.get("disable_antispam"):
        del form.fields["disable_antispam"]
    if request.method == "POST" and form.is_valid():
        acct.digest_schedule = form.cleaned_data["digest_schedule"]
        acct.digest_every_hours = form.cleaned_data["digest_every_hours"]
        if "disable_antispam" in form.fields:
            acct.options = {**acct.options, "antispam_off": form.cleaned_data["disable_antispam"]}
        services.do_save_user_settings(acct)
        messages.success(request, "Settings saved.")
        return redirect("webadmin:my_settings")
    return render(request, "form.html", {"menu": "settings", "title": "My settings", "form": form,
                                         "intro": "How often you get the quarantine digest."})


@roles(*ANYONE)
def my_token(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        if request.POST.get("action") == "create":
            tok = Token.objects.create(user=request.user)
            # Shown once: only now is the key on screen.
            return render(request, "webadmin/token.html", {"title": "API token", "new_key": tok.key, "has": True})
        messages.success(request, "Token revoked.")
        return redirect("webadmin:my_token")
    return render(request, "webadmin/token.html", {"title": "API token",
                                                   "has": Token.objects.filter(user=request.user).exists()})
