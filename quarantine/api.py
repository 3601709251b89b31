"""REST API of the quarantine: list and search, detail (safe views), actions and bulk actions,
for exactly the messages and recipients the caller may see (webadmin.access)."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from quarantine.actions import (
    ACTIONS,
    MAX_BULK,
    ActionError,
    ActionNotAllowed,
    check_action_allowed,
    do_quarantine_action,
)
from quarantine.models import QuarantinedMessage
from webadmin import access
from webadmin.api_permissions import RoleAllowed
from webadmin.guards import ANYONE


class QuarantineSerializer(serializers.ModelSerializer):
    recipients = serializers.SerializerMethodField()

    class Meta:
        model = QuarantinedMessage
        fields = ["id", "qid", "log_id", "queue", "created", "mail_from", "header_from", "subject", "reason", "size",
                  "score", "direction", "recipients"]

    def get_recipients(self, obj: QuarantinedMessage) -> list[dict[str, Any]]:
        visible = self.context["visible_rcpts"].get(obj.pk, [])
        return [{"address": r.address, "status": r.status, "released_at": r.released_at} for r in visible]


ActionIn = inline_serializer("QuarantineActionIn", {"action": serializers.CharField(help_text=", ".join(ACTIONS))})
BulkIn = inline_serializer("QuarantineBulkIn", {"action": serializers.CharField(help_text=", ".join(ACTIONS)),
                                               "ids": serializers.ListField(child=serializers.IntegerField())})
ActionOut = inline_serializer("QuarantineActionOut", {"result": serializers.CharField()})


class QuarantineViewSet(viewsets.ReadOnlyModelViewSet):
    """?queue=user|admin&status=held|released|deleted&q=text"""

    serializer_class = QuarantineSerializer
    permission_classes = [RoleAllowed]
    allowed_roles = ANYONE
    user_option = "view_quarantine"

    def get_queryset(self) -> Any:
        qs = access.quarantine_visible_to(self.request.user)
        qp = self.request.query_params
        if qp.get("queue") in ("user", "admin"):
            qs = qs.filter(queue=qp["queue"])
        status_ = qp.get("status")
        if status_ in ("held", "released", "deleted"):
            rc = access.quarantine_recipients_visible_to(self.request.user).filter(status=status_)
            qs = qs.filter(pk__in=rc.values("message_id"))
        q = (qp.get("q") or "").strip()[:200]
        if q:
            qs = qs.filter(subject__icontains=q) | qs.filter(mail_from__icontains=q)
        return qs.order_by("-created", "-id")

    def get_serializer_context(self) -> dict[str, Any]:
        ctx = super().get_serializer_context()
        ctx["visible_rcpts"] = _Lazy(self.request.user)
        return ctx

    @extend_schema(request=ActionIn, responses=ActionOut)
    @action(detail=True, methods=["post"])
    def act(self, request: Request, pk: str | None = None) -> Response:
        try:
            qa = access.access_quarantined_message(request.user, pk)
        except Http404:
            raise NotFound() from None
        try:
            return Response({"result": do_quarantine_action(access.principal(request.user), qa,
                                                            str(request.data.get("action", "")))})
        except ActionNotAllowed:
            raise NotFound() from None  # an action the role may not use answers like a missing one (ADR 0050)
        except ActionError as e:
            raise ValidationError({"action": [str(e)]}) from None

    @extend_schema(request=BulkIn, responses=inline_serializer("QuarantineBulkOut", {"done": serializers.IntegerField()}))
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        ids = request.data.get("ids")
        act = str(request.data.get("action", ""))
        if not isinstance(ids, list) or act not in ACTIONS:
            raise ValidationError({"detail": ["give action and a list of ids"]})
        if len(ids) > MAX_BULK:  # (the ids past the 500th were left out, reported nowhere)
            raise ValidationError({"ids": [f"at most {MAX_BULK} ids per request"]})
        p = access.principal(request.user)
        try:
            check_action_allowed(p, act)  # the whole request, before any row
        except ActionNotAllowed:
            raise NotFound() from None
        done, missing = 0, []
        for pk in ids:
            try:
                do_quarantine_action(p, access.access_quarantined_message(request.user, pk), act)
                done += 1
            except (Http404, ActionError):
                missing.append(pk)
        return Response({"done": done, "failed": missing})


class _Lazy(dict):  # type: ignore[type-arg]
    """Visible recipients per message, loaded on first use for the messages of one page."""

    def __init__(self, user: Any) -> None:
        super().__init__()
        self.user = user

    def get(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = list(access.quarantine_recipients_visible_to(self.user).filter(message_id=key)
                             .order_by("address"))
        return super().get(key, default)
