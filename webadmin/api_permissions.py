"""REST API access: the same roles and access layer as the pages. A role that may not use an
endpoint gets 404, like a page; sessions owe their TOTP code exactly as in the pages."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import BasePermission

from webadmin.access import principal


class RoleAllowed(BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        from rest_framework.authentication import SessionAuthentication

        if isinstance(request.successful_authenticator, SessionAuthentication):
            from webadmin.views.auth import totp_satisfied

            if not totp_satisfied(request._request):
                raise PermissionDenied("two-factor login required")
        p = principal(request.user)
        allowed = getattr(view, "allowed_roles", ())
        action = getattr(view, "action", None)
        per_action = getattr(view, "action_roles", {}).get(action)
        if per_action is not None:
            allowed = per_action
        if p.role not in allowed:
            raise NotFound()
        option = getattr(view, "user_option", None)
        if option and not p.may(option):
            raise NotFound()
        return True
