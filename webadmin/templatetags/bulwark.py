"""Template helpers for the shell: the role-dependent menus and small formatting filters."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest
from django.urls import reverse

from webadmin.access import principal

register = template.Library()

ADMIN_MENUS = [
    ("dashboard", "Dashboard", "webadmin:dashboard"),
    ("setup", "Setup / Users", "webadmin:setup"),
    ("security", "Security", "webadmin:security"),
    ("messages", "Messages / Queues", "quarantine:landing"),
    ("logging", "Logging", "reports:logging"),
    ("reports", "Reports", "reports:landing"),
]
QADMIN_MENUS = [
    ("dashboard", "Dashboard", "webadmin:dashboard"),
    ("messages", "Messages / Queues", "quarantine:landing"),
    ("logging", "Logging", "reports:logging"),
    ("reports", "Reports", "reports:landing"),
]
USER_MENUS = [
    ("account", "My Account", "webadmin:my_account"),
    ("messages", "Quarantine", "quarantine:list"),
    ("logging", "Message log", "reports:log"),
    ("lists", "My lists", "webadmin:my_lists"),
    ("settings", "Settings", "webadmin:my_settings"),
]


@register.simple_tag(takes_context=True)
def bulwark_menus(context: dict[str, Any]) -> list[dict[str, Any]]:
    request: HttpRequest = context["request"]
    p = principal(request.user)
    if p.role == "global_admin" or p.role == "domain_admin":
        menus = ADMIN_MENUS
    elif p.role == "quarantine_admin":
        menus = QADMIN_MENUS
    elif p.role == "user":
        menus = USER_MENUS
    else:
        menus = []
    current = context.get("menu", "")
    return [{"key": k, "label": label, "url": reverse(name), "active": k == current} for k, label, name in menus]


@register.simple_tag(takes_context=True)
def bulwark_role(context: dict[str, Any]) -> str:
    p = principal(context["request"].user)
    return {"global_admin": "Global admin", "domain_admin": "Domain admin",
            "quarantine_admin": "Quarantine admin", "user": "User"}.get(p.role, "")


@register.filter
def filesize(n: Any) -> str:
    try:
        v = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return ""


@register.simple_tag(takes_context=True)
def query_with(context: dict[str, Any], **changes: Any) -> str:
    """The current query string with some parameters replaced (for sort links and pagers)."""
    q = context["request"].GET.copy()
    for k, v in changes.items():
        if v in (None, ""):
            q.pop(k, None)
        else:
            q[k] = v
    return "?" + q.urlencode()
