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


class ScanStartView(APIView):
    """POST a message to scan (webadmin/scantool.py): ``{"message": TEXT}`` or
    ``{"message_base64": B64}``, optional ``ip``, ``helo``, ``sender``, ``recipients`` (a list or
    a string), ``auth``, ``network`` (bool). 202 with the scan's ``token`` and ``url``; 400 with
    the field for bad input, 503 when other scans are running."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(request=inline_serializer("ScanRequest", {
        "message": serializers.CharField(required=False), "message_base64": serializers.CharField(required=False),
        "ip": serializers.CharField(required=False), "helo": serializers.CharField(required=False),
        "sender": serializers.CharField(required=False), "recipients": serializers.ListField(required=False),
        "auth": serializers.CharField(required=False), "network": serializers.BooleanField(required=False)}),
        responses=inline_serializer("ScanStarted", {"token": serializers.CharField(), "url": serializers.CharField()}))
    def post(self, request: Request) -> Response:
        import base64
        import binascii

        from webadmin import scantool

        data = request.data if isinstance(request.data, dict) else {}
        text, b64 = data.get("message"), data.get("message_base64")
        if (text is None) == (b64 is None):
            raise ValidationError({"message": ["give exactly one of message and message_base64"]})
        if text is not None and not isinstance(text, str) or b64 is not None and not isinstance(b64, str):
            raise ValidationError({"message": ["must be a string"]})
        try:
            raw = text.encode("utf-8") if text is not None else base64.b64decode(b64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError({"message_base64": ["not base64"]}) from None
        rcpts = data.get("recipients", "")
        if isinstance(rcpts, list) and all(isinstance(r, str) for r in rcpts):
            rcpts = " ".join(rcpts)
        strings = {k: data.get(k, "") for k in ("ip", "helo", "sender", "auth")}
        if not isinstance(rcpts, str) or not all(isinstance(v, str) for v in strings.values()):
            raise ValidationError({"detail": ["ip, helo, sender and auth are strings, recipients a list of them"]})
        network = data.get("network", False)
        if not isinstance(network, bool):
            raise ValidationError({"network": ["must be true or false"]})
        p = access.principal(request.user)
        try:
            req = scantool.parse_request(raw, recipients=rcpts, network=network,
                                         domains=None if p.is_global else p.domains, **strings)
        except scantool.ScanError as e:
            raise ValidationError({e.field: [e.message]}) from None
        return _start(request, req)


def _start(request: Request, req: Any) -> Response:
    """Start a scan of ``req`` (a scantool.ScanRequest): 202 with its token and url, 503 when
    other scans are running."""
    from django.urls import reverse

    from webadmin import scantool

    try:
        token = scantool.start(req, request.user.pk)
    except scantool.ScanBusy as e:
        return Response({"detail": e.message}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    except scantool.ScanError as e:
        return Response({"detail": e.message, "field": e.field}, status=status.HTTP_400_BAD_REQUEST)
    return Response({"token": token, "url": reverse("api:antispam-scan-result", args=[token])},
                    status=status.HTTP_202_ACCEPTED)


class ScanAgainView(APIView):
    """POST: scan the message of one of the caller's finished (or failed) scans again, with its
    settings and the rules and policy in force now. 202 with the new scan's ``token`` and
    ``url``; 404 for an unknown, running or another account's scan; 400 when its input no longer
    passes (a domain administrator's recipient outside their domains); 503 when other scans are
    running."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(request=None, responses=inline_serializer("ScanStartedAgain", {
        "token": serializers.CharField(), "url": serializers.CharField()}))
    def post(self, request: Request, token: str) -> Response:
        from django.http import Http404

        from webadmin import scantool

        p = access.principal(request.user)
        try:
            req = scantool.again(token, request.user.pk, None if p.is_global else p.domains)
        except scantool.ScanError as e:
            raise ValidationError({e.field: [e.message]}) from None
        if req is None:
            raise Http404("no such scan")
        return _start(request, req)


class ScanResultView(APIView):
    """GET a scan started by the caller: ``{"state": "running"|"done"|"error", "result": {...},
    "error", "took_s", "network"}``; 404 for another account's, an unknown or an expired scan."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(responses=inline_serializer("ScanState", {
        "state": serializers.CharField(), "result": serializers.DictField(required=False),
        "error": serializers.CharField(required=False), "took_s": serializers.FloatField(required=False),
        "network": serializers.BooleanField()}))
    def get(self, request: Request, token: str) -> Response:
        from django.http import Http404

        from webadmin import scantool

        doc = scantool.read(token, request.user.pk)
        if doc is None:
            raise Http404("no such scan")
        return Response({k: v for k, v in doc.items() if k not in ("owner", "started")})


class ScanLearnView(APIView):
    """POST ``{"label": "spam"|"ham"}``: learn a finished scan's message (the caller's own scan)
    in the Bayes scopes the caller administers; answers ``{"scopes": [...]}``. 404 for an unknown,
    running or another account's scan; 400 for a bad label or no scope to learn in."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(request=inline_serializer("ScanLearn", {"label": serializers.ChoiceField(["spam", "ham"])}),
                   responses=inline_serializer("ScanLearned", {"scopes": serializers.ListField()}))
    def post(self, request: Request, token: str) -> Response:
        from django.http import Http404

        from webadmin import scantool

        done = scantool.finished(token, request.user.pk)
        if done is None:
            raise Http404("no such scan")
        doc, path = done
        label = request.data.get("label") if isinstance(request.data, dict) else None
        if label not in ("spam", "ham"):
            raise ValidationError({"label": ["must be spam or ham"]})
        try:
            scopes = scantool.learn(token, doc, path, label, access.principal(request.user), _actor(request))
        except scantool.ScanError as e:
            raise ValidationError({e.field: [e.message]}) from None
        return Response({"scopes": scopes})


class RulesValidateView(APIView):
    """Check rules in SpamAssassin's format as the rules page's editor types (no change is made):
    the problems of the rules setting ``local_rules``, each with its line, as saving would find
    them (errors refuse the text, warnings name lines the rules layer ignores). Global admins
    only, as the setting is global-only."""

    permission_classes = [RoleAllowed]
    allowed_roles = GLOBAL

    @extend_schema(request=inline_serializer("RulesSource", {"source": serializers.CharField()}),
                   responses=inline_serializer("RulesProblems", {"errors": serializers.ListField(),
                                                                 "warnings": serializers.ListField(),
                                                                 "rules": serializers.IntegerField()}))
    def post(self, request: Request) -> Response:
        from gateway_milter.layers.rules import MAX_LOCAL_RULES, known_rule_names, local_rules_problems
        from webadmin.services import current_snapshot

        source = request.data.get("source", "")  # (text: the parser refuses NUL and lone surrogates)
        if not isinstance(source, str) or len(source.encode("utf-8", "surrogatepass")) > MAX_LOCAL_RULES:
            raise ValidationError({"source": [f"must be the rules' text (at most {MAX_LOCAL_RULES:,} bytes of UTF-8)"]})
        # (a meta may read the rules of the published policy's rule files)
        known = known_rule_names(current_snapshot().settings_for("rules"))
        names, problems = local_rules_problems(source.replace("\r\n", "\n"), known=known)
        return Response({"errors": [p.as_dict() for p in problems if p.severity == "error"],
                         "warnings": [p.as_dict() for p in problems if p.severity == "warning"],
                         "rules": len(names)})


class TrainStartView(APIView):
    """POST (multipart) ``file`` (a message, an mbox file or a zip of them), ``label`` (spam or
    ham) and ``scope`` (one the caller may train: webadmin/training.py): 202 with the training's
    ``token`` and ``url``; 400 naming the field for bad input, 503 while another training runs."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(request={"multipart/form-data": inline_serializer("TrainRequest", {
        "file": serializers.FileField(), "label": serializers.ChoiceField(["spam", "ham"]),
        "scope": serializers.CharField()})},
        responses=inline_serializer("TrainStarted", {"token": serializers.CharField(), "url": serializers.CharField()}))
    def post(self, request: Request) -> Response:
        from django.urls import reverse

        from webadmin import training

        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["send the mailbox as a multipart file field named file"]})
        label, scope = request.data.get("label", ""), request.data.get("scope", "")
        if not isinstance(label, str) or not isinstance(scope, str):
            raise ValidationError({"detail": ["label and scope are strings"]})
        try:
            token = training.start(upload, upload.size, label, scope, request.user.pk, training.scopes_for(request.user),
                                   request.user.get_username())
        except training.TrainingBusy as e:
            return Response({"detail": e.message}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except training.TrainingError as e:
            raise ValidationError({e.field: [e.message]}) from None
        return Response({"token": token, "url": reverse("api:antispam-train-job", args=[token])},
                        status=status.HTTP_202_ACCEPTED)


class TrainJobView(APIView):
    """GET one of the caller's trainings: ``state`` (running, done, error), ``total``, ``done``,
    ``percent``, ``learned``, ``known``, ``skipped``, ``error``; 404 for another account's."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(responses=inline_serializer("TrainJob", {
        "state": serializers.CharField(), "label": serializers.CharField(), "scope": serializers.CharField(),
        "total": serializers.IntegerField(allow_null=True), "done": serializers.IntegerField(),
        "percent": serializers.IntegerField(), "learned": serializers.IntegerField(),
        "known": serializers.IntegerField(), "skipped": serializers.IntegerField()}))
    def get(self, request: Request, token: str) -> Response:
        from django.http import Http404

        from webadmin import training

        job = training.read(token, request.user.pk)
        if job is None:
            raise Http404("no such training")
        return Response(job)


class RulesCatalogueView(APIView):
    """GET the published rule set rule by rule (webadmin/rulesbrowser.py): ``q`` (name or
    description), ``only`` (``scored``, ``hits``, ``good``), ``sub=1`` (sub-rules too), ``page``
    (100 a page). Each rule: ``name``, ``kind``, ``describe``, ``points``,
    ``points_without_bayes``, ``origin``, ``tflags``, ``source``, ``junk_hits``, ``good_hits``
    (among the newest ``messages_read`` messages the caller may see)."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(responses=inline_serializer("RulesCatalogue", {
        "rules": serializers.ListField(child=serializers.DictField()), "total": serializers.IntegerField(),
        "page": serializers.IntegerField(), "pages": serializers.IntegerField(),
        "messages_read": serializers.IntegerField()}))
    def get(self, request: Request) -> Response:
        from webadmin import rulesbrowser

        only = request.query_params.get("only", "")
        if only not in ("", "scored", "hits", "good"):
            raise ValidationError({"only": ["scored, hits or good"]})
        try:
            page = int(request.query_params.get("page", "1"))
        except ValueError:
            raise ValidationError({"page": ["a page number"]}) from None
        if not rulesbrowser.ready(services.current_snapshot()):
            return Response({"detail": "The rule set is being built; try again in a few seconds."},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "3"})
        snapshot = services.current_snapshot()
        domain = rulesbrowser.points_domain(snapshot, access.principal(request.user),
                                            request.query_params.get("domain", "")[:255])
        rows, read = rulesbrowser.catalogue(snapshot, access.messages_visible_to(request.user),
                                            query=request.query_params.get("q", "")[:100],
                                            subrules=request.query_params.get("sub") == "1", only=only, domain=domain)
        shown, kept, pages = rulesbrowser.page_of(rows, page)
        if kept != page:
            raise ValidationError({"page": [f"1 to {pages}"]})
        return Response({"rules": [asdict(r) for r in shown], "total": len(rows), "page": page, "pages": pages,
                         "messages_read": read, "points_for_domain": domain})
