"""Log in (password, then TOTP for accounts that use it; RFC 6238) and TOTP enrolment.

Administrators must use TOTP when AdminSettings.require_admin_totp is on; users when their
domain's user options require it. Mailbox users may log in with their mailbox password through
a verification source that allows it (dynamic authentication, webadmin.verification).
"""

from __future__ import annotations

from typing import Any

import pyotp
from django.contrib import messages
from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from webadmin.access import principal
from webadmin.forms import LoginForm, TotpForm
from webadmin.models import Account, AdminSettings, Role

SESSION_2FA = "bulwark_2fa"
SESSION_PENDING = "bulwark_pending_user"
SESSION_NEXT = "bulwark_next"


def needs_totp(account: Account | None, user: Any = None) -> bool:
    """Must this account use TOTP (enrolled or not)? ``user``: the Django user when it has no
    Account, as the first administrator from ``manage.py bootstrap`` or ``createsuperuser``:
    a superuser is a global administrator (webadmin.access.principal) and is held to the
    administrators' rule like any other."""
    if account is None:
        return bool(getattr(user, "is_superuser", False)) and AdminSettings.get().require_admin_totp
    if account.role != Role.USER:
        return AdminSettings.get().require_admin_totp
    return principal(account.user).options.get("require_totp", False)


def totp_satisfied(request: HttpRequest) -> bool:
    acct = Account.objects.filter(user_id=request.user.pk).first()
    return not needs_totp(acct, request.user) or bool(request.session.get(SESSION_2FA))


def _safe_next(request: HttpRequest, nxt: str) -> str:
    if nxt and url_has_allowed_host_and_scheme(nxt, {request.get_host()}, require_https=request.is_secure()):
        return nxt
    return "/"


MAX_FAILURES = 10
FAILURE_WINDOW_S = 900


def _throttle_keys(request: HttpRequest, name: str) -> list[str]:
    ip = request.META.get("REMOTE_ADDR", "")
    return [f"bulwark:fail:{name}:{ip}", f"bulwark:fail:user:{name.lower()}"]


def throttled(request: HttpRequest, name: str) -> bool:
    """Too many recent failures for this name (from anywhere) or from this address for it."""
    from django.core.cache import cache

    return any((cache.get(k) or 0) >= MAX_FAILURES for k in _throttle_keys(request, name))


def record_failure(request: HttpRequest, name: str) -> None:
    from django.core.cache import cache

    for k in _throttle_keys(request, name):
        cache.add(k, 0, FAILURE_WINDOW_S)
        try:
            cache.incr(k)
        except ValueError:
            cache.set(k, 1, FAILURE_WINDOW_S)


def _verify(account: Account, code: str) -> bool:
    totp = pyotp.TOTP(account.totp_secret)
    import time

    now = int(time.time())
    for drift in (0, -30, 30):  # one step either way for clock skew
        step = (now + drift) // 30
        if step <= account.totp_last_step:
            continue
        if totp.at(now + drift) == code:
            account.totp_last_step = step  # a code works once
            account.save(update_fields=["totp_last_step"])
            return True
    return False


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    nxt = request.POST.get("next") or request.GET.get("next", "")
    if request.method == "POST" and form.is_valid():
        username, password = form.cleaned_data["username"], form.cleaned_data["password"]
        if throttled(request, username):
            form.add_error(None, "Too many failed attempts; try again in 15 minutes.")
            return render(request, "registration/login.html", {"form": form, "next": nxt, "title": "Log in"},
                          status=429)
        user = authenticate(request, username=username, password=password)
        if user is None and "@" in username:
            user = _mailbox_login(username, password)
        if user is None:
            record_failure(request, username)
            form.add_error(None, "Wrong user name or password.")
        else:
            acct = Account.objects.filter(user=user).first()
            if acct is not None and acct.totp_enabled and acct.totp_secret:
                request.session[SESSION_PENDING] = user.pk
                request.session[SESSION_NEXT] = _safe_next(request, nxt)
                return redirect("login_totp")
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[SESSION_2FA] = False
            if needs_totp(acct, user):
                messages.info(request, "Set up two-factor login to continue.")
                return redirect("webadmin:totp_setup")
            return redirect(_safe_next(request, nxt))
    return render(request, "registration/login.html", {"form": form, "next": nxt, "title": "Log in"})


def _mailbox_login(address: str, password: str) -> User | None:
    from webadmin.verification import authenticate_mailbox

    acct = Account.objects.filter(mailbox=address.strip().lower(), role=Role.USER).select_related("user").first()
    if acct is None or not acct.user.is_active:
        return None
    return acct.user if authenticate_mailbox(address, password) else None


@csrf_protect
@never_cache
def login_totp(request: HttpRequest) -> HttpResponse:
    uid = request.session.get(SESSION_PENDING)
    acct = Account.objects.filter(user_id=uid).select_related("user").first() if uid else None
    if acct is None:
        return redirect("login")
    form = TotpForm(request.POST or None)
    if request.method == "POST" and throttled(request, "totp:" + acct.user.username):
        form.add_error(None, "Too many wrong codes; try again in 15 minutes.")
    elif request.method == "POST" and form.is_valid():
        if _verify(acct, form.cleaned_data["code"]):
            nxt = request.session.get(SESSION_NEXT, "/")
            login(request, acct.user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[SESSION_2FA] = True
            return redirect(nxt)
        record_failure(request, "totp:" + acct.user.username)
        form.add_error("code", "That code is not valid.")
    return render(request, "registration/totp.html", {"form": form, "title": "Two-factor login"})


@login_required
@csrf_protect
def totp_setup(request: HttpRequest) -> HttpResponse:
    acct = Account.objects.filter(user=request.user).first()
    if acct is None:
        acct = Account.objects.create(user=request.user, role=Role.GLOBAL_ADMIN if request.user.is_superuser
                                      else Role.USER)
    if not acct.totp_secret or not acct.totp_enabled and request.method == "GET":
        acct.totp_secret = acct.totp_secret if acct.totp_secret and not acct.totp_enabled else pyotp.random_base32()
        acct.save(update_fields=["totp_secret"])
    form = TotpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _verify(acct, form.cleaned_data["code"]):
            acct.totp_enabled = True
            acct.save(update_fields=["totp_enabled"])
            request.session[SESSION_2FA] = True
            messages.success(request, "Two-factor login is on.")
            return redirect("/")
        form.add_error("code", "That code is not valid; check the time on your phone.")
    uri = pyotp.TOTP(acct.totp_secret).provisioning_uri(name=request.user.username, issuer_name="Bulwark")
    return render(request, "registration/totp_setup.html", {
        "form": form, "secret": acct.totp_secret, "uri": uri, "enabled": acct.totp_enabled,
        "qr_svg": _qr_svg(uri) if not acct.totp_enabled else "", "title": "Two-factor login"})


def _qr_svg(text: str) -> str:
    """The provisioning URI as an inline SVG QR code (drawn here: the secret never leaves)."""
    import io

    import qrcode
    import qrcode.image.svg
    from django.utils.safestring import mark_safe

    buf = io.BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8).save(buf)
    svg = buf.getvalue().decode()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration for inline use
    return mark_safe(svg)
