"""REST API of the message log: search with the page's parameters (keyset pagination:
follow ``next``), detail with the recipients the caller may see, and actions."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reports.logactions import NO_LIST_DOMAIN, of_domains
from reports.models import MessageLog
from reports.search import LogQuery, SearchError
from webadmin import access
from webadmin.api_permissions import RoleAllowed
from webadmin.guards import ADMINS, ANYONE


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = MessageLog
        fields = ["id", "log_id", "time", "direction", "client_ip", "client_name", "helo", "mail_from", "header_from",
                  "subject", "message_id", "queue_id", "size", "score", "action", "reason", "policy_version"]


def _rcpts(user: Any, m: MessageLog) -> list[dict[str, Any]]:
    return [{"address": r.address, "action": r.action, "reply": r.reply, "quarantine_id": r.quarantine_id}
            for r in access.recipients_visible_to(user, m)]


class MessageListView(APIView):
    permission_classes = [RoleAllowed]
    allowed_roles = ANYONE
    user_option = "view_log"

    @extend_schema(operation_id="messages_search", parameters=[OpenApiParameter(n, str, required=False) for n in LogQuery.PARAMS],
                   responses=inline_serializer("MessagePage", {"results": MessageSerializer(many=True),
                                                               "next": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        try:
            q = LogQuery.from_params(request.query_params)
            rows, nxt = q.page(access.messages_visible_to(request.user).prefetch_related("recipients"))
        except SearchError as e:
            raise ValidationError({"detail": [str(e)]}) from None
        results = []
        for m in rows:
            item = MessageSerializer(m).data
            item["recipients"] = _rcpts(request.user, m)
            results.append(item)
        return Response({"results": results, "next": q.as_params(cursor=nxt)["cursor"] if nxt else None})


class MessageDetailView(APIView):
    permission_classes = [RoleAllowed]
    allowed_roles = ANYONE
    user_option = "view_log"

    @extend_schema(responses=MessageSerializer)
    def get(self, request: Request, pk: int) -> Response:
        try:
            m = access.access_message(request.user, pk)
        except Http404:
            raise NotFound() from None
        data = MessageSerializer(m).data
        data["recipients"] = _rcpts(request.user, m)
        data["symbols"] = access.visible_symbols(request.user, m)
        data["trace"] = access.visible_trace(request.user, m)
        if access.may_view_transcript(request.user):
            data["transcript"] = access.visible_transcript(request.user, m)
        return Response(data)


class MessageActionView(APIView):
    """POST {"action": "spam"|"ham"|"allow"|"block"}."""

    permission_classes = [RoleAllowed]
    allowed_roles = ADMINS

    @extend_schema(request=inline_serializer("MessageActionIn", {"action": serializers.CharField()}),
                   responses=inline_serializer("MessageActionOut", {"result": serializers.CharField()}))
    def post(self, request: Request, pk: int) -> Response:
        from gateway_milter.layers.base import SettingsError
        from quarantine.actions import train, training_scopes
        from webadmin.models import Domain
        from webadmin.services import do_add_list_entry

        try:
            m = access.access_message(request.user, pk)
        except Http404:
            raise NotFound() from None
        p = access.principal(request.user)
        act = request.data.get("action")
        if act in ("spam", "ham"):
            rcpts = _rcpts(request.user, m)
            qids = sorted({r["quarantine_id"] for r in rcpts if r["quarantine_id"]})
            ok = train(qids, act == "spam", p.username,
                       training_scopes(p, [r["address"] for r in rcpts], m.mail_from))
            return Response({"result": "queued" if ok else "not queued"})
        if act in ("allow", "block") and p.manages_settings and m.mail_from:
            doms: list[Any] = [None] if p.is_global else list(Domain.objects.filter(
                name__in={r["address"].rpartition("@")[2] for r in _rcpts(request.user, m)} & p.domains))
            if not doms:
                raise ValidationError({"action": [NO_LIST_DOMAIN]})
            try:
                for d in doms:
                    do_add_list_entry(act, "sender", m.mail_from, d, comment=f"from message {m.log_id}",
                                      actor=p.username)
            except SettingsError as e:
                raise ValidationError({"detail": [e.message]}) from None
            return Response({"result": f"{m.mail_from} added to the {act} list{of_domains(doms)}"})
        raise ValidationError({"action": ["must be spam, ham, allow or block"]})
