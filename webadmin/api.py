"""REST API of webadmin: domains, accounts, lists, Sieve scripts (with validation), layer
settings, the dashboard, and the caller's own account. Same rules as the pages
(webadmin.access); changes go through webadmin.services."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_milter.layers.base import SettingsError, settings_from_dict, settings_to_dict
from webadmin import access, layerdocs, services
from webadmin.api_permissions import RoleAllowed
from webadmin.guards import ANYONE, GLOBAL, SETTINGS_ADMINS
from webadmin.models import (
    Account,
    AdminSettings,
    Domain,
    LayerSetting,
    ListEntry,
    Role,
    SieveScript,
    UserListEntry,
    UserOptions,
    VerificationSource,
)


def _actor(request: Request) -> str:
    return request.user.get_username()


def _settings_error(e: SettingsError) -> ValidationError:
    return ValidationError({e.path or "detail": [e.message]})


class DomainSerializer(serializers.ModelSerializer):
    # lists of strings (the model's JSON fields took any JSON: a number, or a list holding one,
    # failed in do_save_domain, a 500)
    mail_servers = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)
    aliases = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)

    class Meta:
        model = Domain
        fields = ["id", "name", "mail_servers", "aliases", "created"]
        read_only_fields = ["id", "created"]


class DomainViewSet(viewsets.ModelViewSet):
    serializer_class = DomainSerializer
    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS
    action_roles = {"create": GLOBAL, "destroy": GLOBAL}

    def get_queryset(self) -> Any:
        if self.action in ("update", "partial_update", "destroy"):
            return access.domains_managed_by(self.request.user)
        return access.domains_visible_to(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        d = serializer.validated_data
        try:
            serializer.instance = services.do_save_domain(None, d["name"], d.get("mail_servers", []),
                                                          d.get("aliases", []), actor=_actor(self.request))
        except SettingsError as e:
            raise _settings_error(e) from None

    def perform_update(self, serializer: Any) -> None:
        inst, d = serializer.instance, serializer.validated_data
        name = d.get("name", inst.name) if access.principal(self.request.user).is_global else inst.name
        try:
            services.do_save_domain(inst, name, d.get("mail_servers", inst.mail_servers), d.get("aliases", inst.aliases),
                                    actor=_actor(self.request))
        except SettingsError as e:
            raise _settings_error(e) from None

    def perform_destroy(self, instance: Domain) -> None:
        services.do_delete_domain(instance, actor=_actor(self.request))


class AccountSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    domains = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Domain.objects.all(), required=False)
    password = serializers.CharField(write_only=True, required=False, allow_blank=True)
    aliases = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)  # (as DomainSerializer's)

    class Meta:
        model = Account
        fields = ["id", "username", "role", "mailbox", "aliases", "domains", "digest_schedule", "digest_every_hours",
                  "totp_enabled", "source", "password"]
        read_only_fields = ["id", "totp_enabled", "source"]


class AccountViewSet(viewsets.ModelViewSet):
    serializer_class = AccountSerializer
    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    def get_queryset(self) -> Any:
        return access.accounts_visible_to(self.request.user).prefetch_related("domains")

    def _save(self, serializer: Any, instance: Account | None) -> None:
        d = serializer.validated_data
        p = access.principal(self.request.user)
        role = d.get("role", instance.role if instance else Role.USER)
        mailbox = d.get("mailbox", instance.mailbox if instance else "")
        aliases = d.get("aliases", instance.aliases if instance else [])
        doms = d.get("domains", list(instance.domains.all()) if instance else [])
        if not p.is_global:
            mine = set(p.domains)
            if role != Role.USER:
                raise ValidationError({"role": ["only a global administrator may create administrators"]})
            for a in [mailbox, *aliases]:
                if a and a.rpartition("@")[2].lower() not in mine:
                    raise ValidationError({"mailbox": [f"{a} is not in one of your domains"]})
        try:
            acct = services.do_save_account(
                instance, username=d.get("user", {}).get("username", instance.user.username if instance else mailbox),
                role=role, mailbox=mailbox, aliases=aliases, domains=doms, password=d.get("password") or None)
        except services.AccountError as e:
            raise ValidationError({"detail": [str(e)]}) from None
        for f in ("digest_schedule", "digest_every_hours"):
            if f in d:
                setattr(acct, f, d[f])
        acct.save()
        serializer.instance = acct

    def perform_create(self, serializer: Any) -> None:
        self._save(serializer, None)

    def perform_update(self, serializer: Any) -> None:
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance: Account) -> None:
        if instance.user_id == self.request.user.pk:
            raise ValidationError({"detail": ["cannot delete yourself"]})
        services.do_delete_account(instance)


class ListEntrySerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="name", queryset=Domain.objects.all(), allow_null=True,
                                          required=False)

    class Meta:
        model = ListEntry
        fields = ["id", "list", "kind", "value", "domain", "comment", "created"]
        read_only_fields = ["id", "created"]
        validators: list[Any] = []  # duplicates are merged by do_add_list_entry


class ListEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                       mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = ListEntrySerializer
    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    def get_queryset(self) -> Any:
        return access.list_entries_visible_to(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        d = serializer.validated_data
        p = access.principal(self.request.user)
        dom = d.get("domain")
        comment = d.get("comment", "")
        kind = d["kind"]
        if not p.is_global and (dom is None or dom.pk not in p.domain_ids):
            raise ValidationError({"domain": ["choose one of your domains"]})
        try:
            serializer.instance = services.do_add_list_entry(d["list"], kind, d["value"], dom, comment,
                                                             actor=_actor(self.request))
        except SettingsError as e:
            raise _settings_error(e) from None

    def perform_destroy(self, instance: ListEntry) -> None:
        services.do_delete_list_entry(instance, actor=_actor(self.request))


class UserListEntrySerializer(serializers.ModelSerializer):
    mailbox = serializers.CharField(source="account.mailbox", read_only=True)

    class Meta:
        model = UserListEntry
        fields = ["id", "list", "value", "mailbox", "created"]
        read_only_fields = ["id", "mailbox", "created"]
        validators: list[Any] = []


class UserListEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                           mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Users' own sender allow/block lists (a user manages theirs; admins see their users')."""

    serializer_class = UserListEntrySerializer
    permission_classes = [RoleAllowed]
    allowed_roles = (Role.GLOBAL_ADMIN, Role.DOMAIN_ADMIN, Role.USER)
    action_roles = {"create": (Role.USER,)}
    user_option = "manage_lists"

    def get_queryset(self) -> Any:
        return access.user_list_entries_visible_to(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        p = access.principal(self.request.user)
        if not p.may("manage_lists"):
            raise NotFound()
        d = serializer.validated_data
        try:
            serializer.instance = services.do_add_user_list_entry(Account.objects.get(user=self.request.user),
                                                                  d["list"], d["value"])
        except SettingsError as e:
            raise _settings_error(e) from None

    def perform_destroy(self, instance: UserListEntry) -> None:
        services.do_delete_user_list_entry(instance)


class ScriptSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="name", queryset=Domain.objects.all(), allow_null=True,
                                          required=False)

    class Meta:
        model = SieveScript
        fields = ["id", "name", "source", "domain", "position", "order", "enabled", "updated"]
        read_only_fields = ["id", "updated"]

    def validate_source(self, value: str) -> str:
        from webadmin.sieve_check import validate_sieve

        problems = validate_sieve(value)
        if problems:
            raise serializers.ValidationError([f"line {p.line}, column {p.column}: {p.message}" for p in problems])
        return value


class ScriptViewSet(viewsets.ModelViewSet):
    serializer_class = ScriptSerializer
    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    def get_queryset(self) -> Any:
        return access.scripts_visible_to(self.request.user)

    def _save(self, serializer: Any, instance: SieveScript | None) -> None:
        d = serializer.validated_data
        p = access.principal(self.request.user)
        dom = d.get("domain", instance.domain if instance else None)
        if not p.is_global and (dom is None or dom.pk not in p.domain_ids):
            raise ValidationError({"domain": ["choose one of your domains"]})
        try:
            serializer.instance = services.do_save_script(
                instance, name=d.get("name", instance.name if instance else ""),
                source=d.get("source", instance.source if instance else ""), domain=dom,
                position=d.get("position", instance.position if instance else "after"),
                enabled=d.get("enabled", instance.enabled if instance else True),
                order=d.get("order", instance.order if instance else 0), actor=_actor(self.request))
        except SettingsError as e:
            raise _settings_error(e) from None
        except IntegrityError:
            raise ValidationError({"name": ["a script with this name exists"]}) from None

    def perform_create(self, serializer: Any) -> None:
        self._save(serializer, None)

    def perform_update(self, serializer: Any) -> None:
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance: SieveScript) -> None:
        services.do_delete_script(instance, actor=_actor(self.request))


class SieveValidateView(APIView):
    """Validate a Sieve script as the editor types (no change is made)."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(request=inline_serializer("SieveSource", {"source": serializers.CharField()}),
                   responses=inline_serializer("SieveProblems", {"errors": serializers.ListField()}))
    def post(self, request: Request) -> Response:
        from webadmin.sieve_check import validate_sieve

        source = request.data.get("source", "")
        if not isinstance(source, str) or len(source) > 200_000:
            raise ValidationError({"source": ["must be the script text (at most 200,000 characters)"]})
        return Response({"errors": [p.as_dict() for p in validate_sieve(source)]})


class LayerListView(APIView):
    """The layers that exist, with their names and descriptions."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(responses=inline_serializer("LayerInfo", {"id": serializers.CharField(),
                                                             "title": serializers.CharField(),
                                                             "description": serializers.CharField()}, many=True))
    def get(self, request: Request) -> Response:
        from gateway_milter import layers

        return Response([{"id": lid, "title": layers.get(lid).name, "description": layers.get(lid).description}
                         for lid in layers.available()])


class LayerSettingsView(APIView):
    """GET/PUT /api/layers/<id>/?domain=<name> reads or replaces one layer's settings (global
    without ``domain``), validated by the layer's own Settings dataclass. A global-only field
    (``global_only`` in the answer) changed by a domain administrator: 403; PUT answers
    ``warnings`` besides the settings."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    def _domain(self, request: Request) -> Domain | None:
        name = request.query_params.get("domain") or ""
        p = access.principal(request.user)
        if not name:
            if not p.is_global:
                raise NotFound()
            return None
        d = access.domains_managed_by(request.user).filter(name=name.lower()).first()
        if d is None:
            raise NotFound()
        return d

    @extend_schema(responses=inline_serializer("LayerSettings", {"layer": serializers.CharField(),
                                                                 "settings": serializers.DictField()}))
    def get(self, request: Request, layer_id: str) -> Response:
        from gateway_milter import layers

        if layer_id not in layers.available():
            raise NotFound()
        dom = self._domain(request)
        base = LayerSetting.objects.filter(layer=layer_id, domain__isnull=True).first()
        row = LayerSetting.objects.filter(layer=layer_id, domain=dom).first() if dom else None
        values = {**(base.values if base else {}), **(row.values if row else {})}
        eff = settings_to_dict(settings_from_dict(layers.get(layer_id).Settings, values))
        eff = services.shown_settings(layer_id, eff, dom, access.principal(request.user).is_global)
        cls = layers.get(layer_id).Settings
        meanings = layerdocs.setting_help(layer_id)
        return Response({"layer": layer_id, "domain": dom.name if dom else None, "settings": eff,
                         "stored": row.values if row else (base.values if base and not dom else {}),
                         "global_only": sorted(services.global_only_fields(layer_id)),
                         "defaults": settings_to_dict(cls()),
                         "meanings": {k: meanings[k] for k in eff if meanings.get(k)}})

    @extend_schema(request=inline_serializer("LayerSettingsIn", {"settings": serializers.DictField()}),
                   responses=inline_serializer("LayerSettingsOut", {"layer": serializers.CharField(),
                                                                    "warnings": serializers.ListField()}))
    def put(self, request: Request, layer_id: str) -> Response:
        from gateway_milter import layers

        if layer_id not in layers.available():
            raise NotFound()
        dom = self._domain(request)
        values = request.data.get("settings")
        if not isinstance(values, dict):
            raise ValidationError({"settings": ["must be a mapping"]})
        try:
            warnings = services.do_set_layer_settings(layer_id, values, dom, actor=_actor(request), by=request.user)
        except services.SettingsPermissionError as e:
            raise PermissionDenied({e.path: [e.message]}) from None
        except SettingsError as e:
            raise _settings_error(e) from None
        out = self.get(request, layer_id)
        out.data["warnings"] = warnings
        return out


class DashboardView(APIView):
    permission_classes = [RoleAllowed]
    allowed_roles = ANYONE

    @extend_schema(responses=inline_serializer("Dashboard", {"charts": serializers.ListField()}))
    def get(self, request: Request) -> Response:
        from reports.charts import chart_payload, charts_for
        from webadmin.status import server_status

        p = access.principal(request.user)
        if not p.may("view_log"):
            raise NotFound()
        out: dict[str, Any] = {"charts": chart_payload(charts_for(request.user)),
                               "held": access.quarantine_recipients_visible_to(request.user).filter(status="held").count()}
        if p.is_admin:
            out["domains"] = access.domains_visible_to(request.user).count()
        if p.manages_settings:
            out["users"] = access.accounts_visible_to(request.user).count()
        if p.is_global:
            out["status"] = [s.as_dict() for s in server_status()]
        return Response(out)


class MeView(APIView):
    """The caller's own account: role, addresses, effective options, digest schedule."""

    permission_classes = [RoleAllowed]
    allowed_roles = ANYONE

    @extend_schema(responses=inline_serializer("Me", {"username": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        p = access.principal(request.user)
        acct = Account.objects.filter(user=request.user).first()
        return Response({"username": p.username, "role": p.role, "domains": sorted(p.domains),
                         "addresses": sorted(p.addresses), "options": p.options,
                         "digest_schedule": acct.digest_schedule if acct else None,
                         "digest_every_hours": acct.digest_every_hours if acct else None})

    @extend_schema(request=inline_serializer("MeIn", {"digest_schedule": serializers.CharField(required=False)}),
                   responses=inline_serializer("MeOut", {"username": serializers.CharField()}))
    def patch(self, request: Request) -> Response:
        acct = Account.objects.filter(user=request.user).first()
        if acct is None:
            raise NotFound()
        sched = request.data.get("digest_schedule")
        if sched is not None:
            if not isinstance(sched, str) or sched not in dict(Account.DIGEST_SCHEDULES):
                raise ValidationError({"digest_schedule": ["must be never, hours, daily or weekly"]})
            acct.digest_schedule = sched
        hours = request.data.get("digest_every_hours")
        if hours is not None:
            if not isinstance(hours, int) or not 1 <= hours <= 168:
                raise ValidationError({"digest_every_hours": ["must be 1-168"]})
            acct.digest_every_hours = hours
        acct.save()
        return self.get(request)


class TokenView(APIView):
    """POST creates (or replaces) the caller's API token; DELETE revokes it."""

    permission_classes = [RoleAllowed]
    allowed_roles = ANYONE

    @extend_schema(request=None, responses=inline_serializer("TokenOut", {"token": serializers.CharField()}))
    def post(self, request: Request) -> Response:
        from rest_framework.authtoken.models import Token

        Token.objects.filter(user=request.user).delete()
        return Response({"token": Token.objects.create(user=request.user).key}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        from rest_framework.authtoken.models import Token

        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)




class VerificationSourceSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="name", queryset=Domain.objects.all())
    config = serializers.JSONField(required=False)

    class Meta:
        model = VerificationSource
        fields = ["id", "domain", "order", "kind", "config", "allow_login", "auto_create", "cache_hours", "enabled"]
        read_only_fields = ["id"]

    def to_representation(self, instance: VerificationSource) -> dict[str, Any]:
        data = super().to_representation(instance)
        if isinstance(data.get("config"), dict) and data["config"].get("bind_password"):
            data["config"] = {**data["config"], "bind_password": "********"}  # never read back
        return data


class VerificationSourceViewSet(viewsets.ModelViewSet):
    """User verification sources of the domains the caller manages."""

    serializer_class = VerificationSourceSerializer
    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    def get_queryset(self) -> Any:
        return VerificationSource.objects.filter(domain__in=access.domains_managed_by(self.request.user))

    def _check_domain(self, serializer: Any) -> None:
        dom = serializer.validated_data.get("domain")
        if dom is not None and not access.domains_managed_by(self.request.user).filter(pk=dom.pk).exists():
            raise ValidationError({"domain": ["choose one of your domains"]})
        cfg = serializer.validated_data.get("config")
        if cfg is not None and not isinstance(cfg, dict):
            raise ValidationError({"config": ["must be an object"]})
        if (isinstance(cfg, dict) and cfg.get("bind_password") == "********" and serializer.instance is not None):
            cfg["bind_password"] = serializer.instance.config.get("bind_password", "")

    def perform_create(self, serializer: Any) -> None:
        self._check_domain(serializer)
        serializer.save()

    def perform_update(self, serializer: Any) -> None:
        self._check_domain(serializer)
        serializer.save()


class UserOptionsView(APIView):
    """GET/PUT the default user options: global (global admins) or ``?domain=NAME``."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    def _row(self, request: Request) -> UserOptions:
        name = request.query_params.get("domain") or ""
        if not name:
            if not access.principal(request.user).is_global:
                raise NotFound()
            return UserOptions.objects.filter(domain__isnull=True).first() or UserOptions()
        dom = access.domains_managed_by(request.user).filter(name=name.lower()).first()
        if dom is None:
            raise NotFound()
        return UserOptions.objects.filter(domain=dom).first() or UserOptions(domain=dom)

    @extend_schema(responses=inline_serializer("UserOptionsOut", {f: serializers.BooleanField()
                                                                  for f in UserOptions.FIELDS}))
    def get(self, request: Request) -> Response:
        row = self._row(request)
        return Response({f: getattr(row, f) for f in UserOptions.FIELDS})

    @extend_schema(request=inline_serializer("UserOptionsIn", {f: serializers.BooleanField(required=False)
                                                               for f in UserOptions.FIELDS}),
                   responses=inline_serializer("UserOptionsPut", {f: serializers.BooleanField()
                                                                  for f in UserOptions.FIELDS}))
    def put(self, request: Request) -> Response:
        row = self._row(request)
        for k, v in request.data.items():
            if k not in UserOptions.FIELDS or not isinstance(v, bool):
                raise ValidationError({k: ["unknown option or not true/false"]})
            setattr(row, k, v)
        row.save()
        return self.get(request)


class AdminSettingsView(APIView):
    """GET/PATCH retention, digest links and the TOTP policy (global administrators)."""

    permission_classes = [RoleAllowed]
    allowed_roles = GLOBAL
    FIELDS = {"quarantine_retention_days": int, "log_retention_days": int, "require_admin_totp": bool,
              "public_url": str, "digest_link_days": int}

    @extend_schema(responses=inline_serializer("AdminSettingsOut", {"quarantine_retention_days":
                                                                    serializers.IntegerField()}))
    def get(self, request: Request) -> Response:
        s = AdminSettings.get()
        return Response({f: getattr(s, f) for f in self.FIELDS})

    @extend_schema(request=inline_serializer("AdminSettingsIn", {"quarantine_retention_days":
                                                                 serializers.IntegerField(required=False)}),
                   responses=inline_serializer("AdminSettingsPatch", {"quarantine_retention_days":
                                                                      serializers.IntegerField()}))
    def patch(self, request: Request) -> Response:
        s = AdminSettings.get()
        for k, v in request.data.items():
            tp = self.FIELDS.get(k)
            if tp is None or not isinstance(v, tp) or (tp is int and (isinstance(v, bool) or not 1 <= v <= 3650)):
                raise ValidationError({k: ["unknown setting or invalid value"]})
            if k == "public_url" and v and (not v.startswith(("https://", "http://")) or len(v) > 200
                                            or any(c.isspace() or not c.isprintable() for c in v)):
                raise ValidationError({k: ["must be an http(s) URL of at most 200 characters"]})
            setattr(s, k, v)
        s.save()
        return self.get(request)


class UsersCsvView(APIView):
    """GET: the visible users as CSV. POST ``{"csv": "..."}``: import (same rules as the page)."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(responses={200: str})
    def get(self, request: Request) -> Any:
        import csv
        import io

        from django.http import HttpResponse

        from webadmin.views.setup import csv_safe

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(services.CSV_FIELDS)
        for a in access.accounts_visible_to(request.user).prefetch_related("domains"):
            w.writerow([csv_safe(x) for x in (a.user.username, a.mailbox, " ".join(a.aliases), a.role,
                                              " ".join(d.name for d in a.domains.all()), a.digest_schedule)])
        return HttpResponse(buf.getvalue(), content_type="text/csv; charset=utf-8")

    @extend_schema(request=inline_serializer("UsersCsvIn", {"csv": serializers.CharField()}),
                   responses=inline_serializer("UsersCsvOut", {"created": serializers.IntegerField(),
                                                               "errors": serializers.ListField()}))
    def post(self, request: Request) -> Response:
        text = request.data.get("csv")
        if not isinstance(text, str) or len(text) > 5_000_000:
            raise ValidationError({"csv": ["give the CSV text (at most 5 MB)"]})
        created, errors = services.do_import_accounts_csv(
            text, list(access.domains_managed_by(request.user)),
            may_create_admins=access.principal(request.user).is_global, actor=_actor(request))
        return Response({"created": created, "errors": errors})


class DkimKeysView(APIView):
    """GET: signing keys and TXT records of the caller's domains. POST ``{"domain", "action":
    "generate"|"rotate"|"activate", "algorithm", "selector"}``."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    def _store(self) -> Any:
        try:
            from gateway_milter.auth.keystore import get_keystore
        except ImportError:
            raise NotFound() from None
        return get_keystore()

    @extend_schema(responses=inline_serializer("DkimKeys", {"domain": serializers.CharField(),
                                                            "keys": serializers.ListField()}, many=True))
    def get(self, request: Request) -> Response:
        from gateway_milter.auth.keystore import KeyStoreError

        ks = self._store()
        out = []
        for d in access.domains_managed_by(request.user):
            active = ks.active_selector(d.name)
            keys = []
            for sel in ks.selectors(d.name):
                try:
                    rec = ks.dns_record(d.name, sel)
                except KeyStoreError:
                    rec = ""
                keys.append({"selector": sel, "active": sel == active, "name": f"{sel}._domainkey.{d.name}",
                             "txt": rec})
            out.append({"domain": d.name, "keys": keys})
        return Response(out)

    @extend_schema(request=inline_serializer("DkimAction", {"domain": serializers.CharField(),
                                                            "action": serializers.CharField()}),
                   responses=inline_serializer("DkimResult", {"selector": serializers.CharField()}))
    def post(self, request: Request) -> Response:
        from gateway_milter.auth.keystore import KeyStoreError

        ks = self._store()
        dom = access.domains_managed_by(request.user).filter(name=str(request.data.get("domain", "")).lower()).first()
        if dom is None:
            raise NotFound()
        act = request.data.get("action")
        algo = request.data.get("algorithm", "rsa-sha256")
        try:
            if act == "generate":
                sel = str(request.data.get("selector") or "bulwark1")
                return Response({"selector": sel, "txt": ks.generate(dom.name, sel, algo)},
                                status=status.HTTP_201_CREATED)
            if act == "rotate":
                sel, rec = ks.rotate(dom.name, algo)
                return Response({"selector": sel, "txt": rec}, status=status.HTTP_201_CREATED)
            if act == "activate":
                sel = str(request.data.get("selector", ""))
                ks.activate(dom.name, sel)
                return Response({"selector": sel})
        except KeyStoreError as e:
            raise ValidationError({"detail": [str(e)]}) from None
        raise ValidationError({"action": ["must be generate, rotate or activate"]})


class MtaQueueView(APIView):
    """The Postfix queue (read-only), for global administrators."""

    permission_classes = [RoleAllowed]
    allowed_roles = GLOBAL

    @extend_schema(responses=inline_serializer("QueuedMessage", {"queue_id": serializers.CharField()}, many=True))
    def get(self, request: Request) -> Response:
        from quarantine.mtaqueue import QueueUnavailable, read_queue

        try:
            rows = read_queue()
        except QueueUnavailable as e:
            return Response({"detail": str(e)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response([{"queue_id": m.queue_id, "queue": m.queue_name, "arrival": m.arrival, "size": m.size,
                          "sender": m.sender, "recipients": [{"address": a, "reason": r} for a, r in m.recipients]}
                         for m in rows])


class PolicyOrderView(APIView):
    """The scripts the milter runs for ``?domain=NAME`` (global admins: no domain = mail of no
    configured domain), in order; sources of other administrators' scripts are omitted."""

    permission_classes = [RoleAllowed]
    allowed_roles = SETTINGS_ADMINS

    @extend_schema(responses=inline_serializer("PolicyStep", {"name": serializers.CharField(),
                                                              "system": serializers.BooleanField()}, many=True))
    def get(self, request: Request) -> Response:
        from gateway_milter.policy.snapshot import PolicySnapshot
        from webadmin.models import PublishedPolicy

        try:
            from gateway_milter.sieve.policy import build_plan
        except ImportError:
            raise NotFound() from None
        name = (request.query_params.get("domain") or "").lower()
        p = access.principal(request.user)
        if name:
            if not access.domains_managed_by(request.user).filter(name=name).exists():
                raise NotFound()
        elif not p.is_global:
            raise NotFound()
        pub = PublishedPolicy.objects.order_by("-version").first()
        if pub is None:
            return Response([])
        plan = build_plan(PolicySnapshot(pub.document, pub.version), name or None)
        own = set(access.scripts_visible_to(request.user).values_list("name", flat=True))
        return Response([{"name": s.name, "system": s.system, "stage": stage,
                          "source": s.source if (s.system or s.name in own) else None}
                         for stage, scripts in (("message", plan.message), ("recipient", plan.recipient))
                         for s in scripts])
