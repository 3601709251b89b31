"""Setup / Users: domains (mail servers, aliases, per-domain user options, verification
sources), users and administrators (CSV import/export), default user options, gateway settings."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from gateway_milter.layers.base import SettingsError
from webadmin import access, services
from webadmin.forms import (
    AccountForm,
    AdminSettingsForm,
    CsvImportForm,
    DomainForm,
    UserOptionsForm,
    VerificationSourceForm,
)
from webadmin.guards import GLOBAL, SETTINGS_ADMINS, roles
from webadmin.models import AdminSettings, UserOptions, VerificationSource


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


# -- domains ---------------------------------------------------------------------------------
@roles(*SETTINGS_ADMINS)
def domains(request: HttpRequest) -> HttpResponse:
    rows = access.domains_visible_to(request.user).prefetch_related("verification_sources")
    return render(request, "webadmin/domains.html", {"menu": "setup", "title": "Domains", "domains": rows,
                                                     "may_add": access.principal(request.user).is_global})


@roles(*GLOBAL)
def domain_new(request: HttpRequest) -> HttpResponse:
    form = DomainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        name, servers, aliases = form.cleaned()
        try:
            d = services.do_save_domain(None, name, servers, aliases, actor=_actor(request))
        except SettingsError as e:
            form.add_error(None, str(e))
        else:
            messages.success(request, f"Domain {d.name} added.")
            return redirect("webadmin:domain", d.pk)
    return render(request, "form.html", {"menu": "setup", "title": "Add a domain", "form": form,
                                         "cancel": "/setup/domains/"})


@roles(*SETTINGS_ADMINS)
def domain_edit(request: HttpRequest, pk: int) -> HttpResponse:
    d = access.access_domain(request.user, pk, manage=True)
    form = DomainForm(request.POST or None, initial={"name": d.name, "mail_servers": "\n".join(d.mail_servers),
                                                     "aliases": "\n".join(d.aliases)}, prefix="d")
    opts_row = UserOptions.objects.filter(domain=d).first() or UserOptions(domain=d)
    opts = UserOptionsForm(request.POST or None, instance=opts_row, prefix="o")
    p = access.principal(request.user)
    if not p.is_global:
        form.fields["name"].disabled = True
    if request.method == "POST" and form.is_valid() and opts.is_valid():
        name, servers, aliases = form.cleaned()
        try:
            services.do_save_domain(d, name if p.is_global else d.name, servers, aliases, actor=_actor(request))
        except SettingsError as e:
            form.add_error(None, str(e))
        else:
            opts.save()
            messages.success(request, "Domain saved.")
            return redirect("webadmin:domain", d.pk)
    return render(request, "webadmin/domain.html", {
        "menu": "setup", "title": d.name, "domain": d, "form": form, "opts": opts,
        "sources": d.verification_sources.all(), "source_form": VerificationSourceForm(prefix="s"),
        "may_delete": p.is_global})


@require_POST
@roles(*GLOBAL)
def domain_delete(request: HttpRequest, pk: int) -> HttpResponse:
    d = access.access_domain(request.user, pk, manage=True)
    services.do_delete_domain(d, actor=_actor(request))
    messages.success(request, f"Domain {d.name} deleted.")
    return redirect("webadmin:domains")


@require_POST
@roles(*SETTINGS_ADMINS)
def source_add(request: HttpRequest, pk: int) -> HttpResponse:
    d = access.access_domain(request.user, pk, manage=True)
    form = VerificationSourceForm(request.POST, prefix="s")
    if form.is_valid():
        src = form.save(commit=False)
        src.domain, src.config = d, form.cleaned_data["config_json"]
        src.save()
        messages.success(request, "Verification source added.")
    else:
        messages.error(request, "Source not added: " + "; ".join(
            f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect("webadmin:domain", d.pk)


@require_POST
@roles(*SETTINGS_ADMINS)
def source_delete(request: HttpRequest, pk: int, sid: int) -> HttpResponse:
    d = access.access_domain(request.user, pk, manage=True)
    VerificationSource.objects.filter(domain=d, pk=sid).delete()
    messages.success(request, "Verification source removed.")
    return redirect("webadmin:domain", d.pk)


@require_POST
@roles(*SETTINGS_ADMINS)
def source_test(request: HttpRequest, pk: int) -> HttpResponse:
    from webadmin.verification import verify_address

    d = access.access_domain(request.user, pk, manage=True)
    address = (request.POST.get("address") or "").strip().lower()
    if not address.endswith("@" + d.name):
        messages.error(request, f"Test an address of {d.name}.")
    else:
        v = verify_address(address, use_cache=False)
        answer = {True: "exists", False: "does not exist", None: "could not be verified"}[v.exists]
        messages.info(request, f"{address} {answer}" + (f" (source: {v.source})" if v.source else ""))
    return redirect("webadmin:domain", d.pk)


# -- users -----------------------------------------------------------------------------------
@roles(*SETTINGS_ADMINS)
def users(request: HttpRequest) -> HttpResponse:
    q = (request.GET.get("q") or "").strip()
    rows = access.accounts_visible_to(request.user).prefetch_related("domains")
    if q:
        rows = rows.filter(user__username__icontains=q) | rows.filter(mailbox__icontains=q)
    return render(request, "webadmin/users.html", {"menu": "setup", "title": "Users", "accounts": rows[:500], "q": q})


def _account_form(request: HttpRequest, data: object = None, initial: dict | None = None) -> AccountForm:
    p = access.principal(request.user)
    return AccountForm(data, initial=initial, domains=access.domains_managed_by(request.user),
                       may_create_admins=p.is_global)


@roles(*SETTINGS_ADMINS)
def user_new(request: HttpRequest) -> HttpResponse:
    form = _account_form(request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            acct = services.do_save_account(None, username=d["username"], role=d["role"], mailbox=d["mailbox"],
                                            aliases=d["alias_list"], domains=list(d["domains"]),
                                            password=d["password"] or None)
        except services.AccountError as e:
            form.add_error(None, str(e))
        else:
            acct.digest_schedule, acct.digest_every_hours = d["digest_schedule"], d["digest_every_hours"]
            acct.save(update_fields=["digest_schedule", "digest_every_hours"])
            messages.success(request, f"User {acct.user.username} created.")
            return redirect("webadmin:users")
    return render(request, "form.html", {"menu": "setup", "title": "Add a user", "form": form, "cancel": "/setup/users/"})


@roles(*SETTINGS_ADMINS)
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    acct = access.access_account(request.user, pk)
    initial = {"username": acct.user.username, "role": acct.role, "mailbox": acct.mailbox,
               "aliases": "\n".join(acct.aliases), "domains": list(acct.domains.all()),
               "digest_schedule": acct.digest_schedule, "digest_every_hours": acct.digest_every_hours}
    form = _account_form(request, request.POST or None, initial)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.do_save_account(acct, username=d["username"], role=d["role"], mailbox=d["mailbox"],
                                     aliases=d["alias_list"], domains=list(d["domains"]), password=d["password"] or None)
        except services.AccountError as e:
            form.add_error(None, str(e))
        else:
            acct.digest_schedule, acct.digest_every_hours = d["digest_schedule"], d["digest_every_hours"]
            acct.save(update_fields=["digest_schedule", "digest_every_hours"])
            messages.success(request, "User saved.")
            return redirect("webadmin:users")
    return render(request, "webadmin/user.html", {"menu": "setup", "title": acct.user.username, "form": form,
                                                  "account": acct})


@require_POST
@roles(*SETTINGS_ADMINS)
def user_delete(request: HttpRequest, pk: int) -> HttpResponse:
    acct = access.access_account(request.user, pk)
    if acct.user_id == request.user.pk:
        raise Http404("cannot delete yourself")
    services.do_delete_account(acct)
    messages.success(request, "User deleted.")
    return redirect("webadmin:users")


@require_POST
@roles(*SETTINGS_ADMINS)
def user_reset_totp(request: HttpRequest, pk: int) -> HttpResponse:
    """For a lost phone: the account enrols a new authenticator at its next login."""
    acct = access.access_account(request.user, pk)
    acct.totp_enabled, acct.totp_secret, acct.totp_last_step = False, "", 0
    acct.save(update_fields=["totp_enabled", "totp_secret", "totp_last_step"])
    messages.success(request, f"Two-factor login of {acct.user.username} reset.")
    return redirect("webadmin:user", acct.pk)


@roles(*SETTINGS_ADMINS)
def user_import(request: HttpRequest) -> HttpResponse:
    form = CsvImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        raw = form.cleaned_data["file"].read(5_000_000)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            form.add_error("file", "The file must be UTF-8 text.")
        else:
            created, errors = services.do_import_accounts_csv(
                text, list(access.domains_managed_by(request.user)),
                may_create_admins=access.principal(request.user).is_global, actor=_actor(request))
            messages.success(request, f"{created} user(s) created.")
            for e in errors[:50]:
                messages.error(request, e)
            return redirect("webadmin:users")
    return render(request, "form.html", {"menu": "setup", "title": "Import users", "form": form, "multipart": True,
                                         "submit": "Import", "cancel": "/setup/users/",
                                         "intro": "Header: username,mailbox,aliases,role,domains,digest. "
                                                  "Aliases and domains are separated by spaces."})


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_safe(v: object) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


@roles(*SETTINGS_ADMINS)
def user_export(request: HttpRequest) -> HttpResponse:
    w = csv.writer(_Echo())
    rows = access.accounts_visible_to(request.user).prefetch_related("domains")

    def gen():  # type: ignore[no-untyped-def]
        yield w.writerow(services.CSV_FIELDS)
        for a in rows.iterator(chunk_size=500):
            yield w.writerow([csv_safe(x) for x in (a.user.username, a.mailbox, " ".join(a.aliases), a.role,
                                                    " ".join(d.name for d in a.domains.all()), a.digest_schedule)])

    resp = StreamingHttpResponse(gen(), content_type="text/csv; charset=utf-8")
    resp["Content-Disposition"] = 'attachment; filename="bulwark-users.csv"'
    return resp


@roles(*SETTINGS_ADMINS)
def user_options(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    if not p.is_global:
        return redirect("webadmin:domains")  # domain admins set options per domain
    row = UserOptions.objects.filter(domain__isnull=True).first() or UserOptions()
    form = UserOptionsForm(request.POST or None, instance=row)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Default user options saved.")
        return redirect("webadmin:setup")
    return render(request, "form.html", {"menu": "setup", "title": "Default user options", "form": form,
                                         "intro": "Global defaults; each domain may override them.",
                                         "cancel": "/setup/"})


@roles(*GLOBAL)
def admin_settings(request: HttpRequest) -> HttpResponse:
    s = AdminSettings.get()
    fields = ["quarantine_retention_days", "log_retention_days", "require_admin_totp", "public_url", "digest_link_days"]
    form = AdminSettingsForm(request.POST or None, initial={f: getattr(s, f) for f in fields})
    if request.method == "POST" and form.is_valid():
        for f in fields:
            setattr(s, f, form.cleaned_data[f])
        s.save()
        messages.success(request, "Settings saved.")
        return redirect("webadmin:setup")
    return render(request, "form.html", {"menu": "setup", "title": "Gateway settings", "form": form, "cancel": "/setup/"})


