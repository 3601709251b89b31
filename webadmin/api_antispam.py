"""REST API of the anti-spam state (docs/api.md): Bayes scopes and greylisting, with the same
scoping as the page (webadmin/antispam_state.py). A malformed scope or network answers 400, a
scope the caller does not administer 404 (like another tenant's object), an unreachable
state store 503."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_milter.store import StoreError
from webadmin import access, antispam_state, services
from webadmin.api_permissions import RoleAllowed
from webadmin.guards import GLOBAL, SETTINGS_ADMINS

SCOPE_FIELDS = {
    "scope": serializers.CharField(), "spam_learned": serializers.IntegerField(),
    "ham_learned": serializers.IntegerField(), "tokens": serializers.IntegerField(),
    "model_spam_steps": serializers.IntegerField(), "model_ham_steps": serializers.IntegerField(),
    "min_learned": serializers.IntegerField(), "in_use": serializers.BooleanField(), "note": serializers.CharField()}


class AntispamKeyCountSerializer(serializers.Serializer):
    """A number of keys, counted up to a limit (``at_least``: the limit was reached)."""

    count = serializers.IntegerField()
    at_least = serializers.BooleanField()


def _actor(request: Request) -> str:
    return request.user.get_username()


def _unavailable(e: StoreError) -> Response:
    return Response({"detail": f"the state store cannot be reached: {e}"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)


class BayesScopesView(APIView):
    """GET: the learned Bayes scopes the caller administers (global admins: all; domain admins:
    their domains' and their addresses'), user scopes at most ``user_scope_limit``."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(responses=inline_serializer("AntispamBayes", {
        "scopes": inline_serializer("AntispamScope", SCOPE_FIELDS, many=True), "user_scopes_capped": serializers.BooleanField(),
        "user_scope_limit": serializers.IntegerField()}))
    def get(self, request: Request) -> Response:
        try:
            listing = antispam_state.bayes_listing(access.principal(request.user), services.current_snapshot())
        except StoreError as e:
            return _unavailable(e)
        return Response(asdict(listing))


class BayesWipeView(APIView):
    """POST ``{"scope": "dom:example.com"}``: forget everything the scope learned."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(request=inline_serializer("AntispamWipeIn", {"scope": serializers.CharField()}),
                   responses=inline_serializer("AntispamWipeOut", {"scope": serializers.CharField(),
                                                                   "wiped": serializers.BooleanField()}))
    def post(self, request: Request) -> Response:
        try:
            scope = antispam_state.access_bayes_scope(access.principal(request.user), _field(request, "scope"),
                                                      services.current_snapshot())
        except antispam_state.StateInputError as e:
            raise ValidationError({"scope": [str(e)]}) from None
        try:
            wiped = antispam_state.do_wipe_bayes_scope(scope, _actor(request))
        except StoreError as e:
            return _unavailable(e)
        return Response({"scope": scope, "wiped": wiped})


class GreylistStateView(APIView):
    """GET: numbers of pending and passed triplets, and the client networks (global admins)."""

    permission_classes = [RoleAllowed]
    allowed_roles = GLOBAL

    @extend_schema(responses=inline_serializer("AntispamGreylist", {
        "pending": AntispamKeyCountSerializer(), "passed": AntispamKeyCountSerializer(),
        "networks": inline_serializer("AntispamNetwork", {
            "network": serializers.CharField(), "passes": serializers.IntegerField(),
            "ttl": serializers.IntegerField(allow_null=True), "auto_pass": serializers.BooleanField()}, many=True),
        "networks_capped": serializers.BooleanField(), "auto_pass_after": serializers.IntegerField()}))
    def get(self, request: Request) -> Response:
        try:
            return Response(asdict(antispam_state.greylist_state(services.current_snapshot())))
        except StoreError as e:
            return _unavailable(e)


class GreylistClearView(APIView):
    """POST ``{"network": "198.51.100.0/24"}``: remove one network's pass count (404 when there is
    none); ``{"all": true}``: forget all greylisting state."""

    permission_classes = [RoleAllowed]
    allowed_roles = GLOBAL

    @extend_schema(request=inline_serializer("AntispamGreylistClearIn", {
        "network": serializers.CharField(required=False), "all": serializers.BooleanField(required=False)}),
                   responses=inline_serializer("AntispamGreylistClearOut", {"deleted": serializers.IntegerField()}))
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        everything, network = data.get("all"), data.get("network")
        if everything is not None and not isinstance(everything, bool):
            raise ValidationError({"all": ["must be true or false"]})
        if bool(everything) == (network is not None):
            raise ValidationError({"detail": ['give either {"network": "..."} or {"all": true}']})
        try:
            if everything:
                return Response({"deleted": antispam_state.do_clear_greylist(_actor(request))})
            try:
                net = antispam_state.parse_network(network)
            except antispam_state.StateInputError as e:
                raise ValidationError({"network": [str(e)]}) from None
            antispam_state.do_remove_greylist_network(net, _actor(request))
        except StoreError as e:
            return _unavailable(e)
        return Response({"deleted": 1})


def _field(request: Request, name: str) -> Any:
    data = request.data
    if not isinstance(data, dict) or name not in data:
        raise ValidationError({name: ["this field is required"]})
    return data[name]
