"""View guards: who may open which page. A page a role may not use answers 404, exactly like
an object of another tenant (webadmin/access.py), so probing learns nothing."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from webadmin.access import Principal, principal
from webadmin.models import Role

View = Callable[..., HttpResponse]

ADMINS = (Role.GLOBAL_ADMIN, Role.DOMAIN_ADMIN, Role.QUARANTINE_ADMIN)
SETTINGS_ADMINS = (Role.GLOBAL_ADMIN, Role.DOMAIN_ADMIN)
GLOBAL = (Role.GLOBAL_ADMIN,)
ANYONE = (Role.GLOBAL_ADMIN, Role.DOMAIN_ADMIN, Role.QUARANTINE_ADMIN, Role.USER)


def roles(*allowed: str) -> Callable[[View], View]:
    def deco(fn: View) -> View:
        @login_required
        @wraps(fn)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            p = principal(request.user)
            gate = second_factor_gate(request)
            if gate is not None:
                return gate
            if p.role not in allowed:
                raise Http404("no such page")
            request.principal = p  # type: ignore[attr-defined]
            return fn(request, *args, **kwargs)

        wrapper.allowed_roles = allowed  # type: ignore[attr-defined]
        return wrapper

    return deco


def second_factor_gate(request: HttpRequest) -> HttpResponse | None:
    """Send a session that still owes its TOTP code to the code page (or to enrolment)."""
    from webadmin.models import Account
    from webadmin.views.auth import SESSION_PENDING, totp_satisfied

    if totp_satisfied(request):
        return None
    acct = Account.objects.filter(user_id=request.user.pk).first()
    if acct is not None and acct.totp_enabled:
        request.session[SESSION_PENDING] = request.user.pk
        return redirect("login_totp")
    return redirect("webadmin:totp_setup")


def option(name: str) -> Callable[[View], View]:
    """A user page that a user option may switch off (admins always pass)."""

    def deco(fn: View) -> View:
        @wraps(fn)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            p: Principal = principal(request.user)
            if not p.may(name):
                raise Http404("no such page")
            return fn(request, *args, **kwargs)

        return wrapper

    return deco
