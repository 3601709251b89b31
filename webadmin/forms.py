"""Forms of the web admin. Parsing only; changes go through webadmin.services ``do_*``."""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from typing import Any

from django import forms

from webadmin.models import Account, Domain, Role, UserOptions, VerificationSource


def _lines(text: str) -> list[str]:
    return [x.strip() for x in text.replace(",", "\n").splitlines() if x.strip()]


class LoginForm(forms.Form):
    username = forms.CharField(max_length=320, widget=forms.TextInput(attrs={"autofocus": True,
                                                                              "autocomplete": "username"}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class TotpForm(forms.Form):
    code = forms.RegexField(regex=r"^\d{6}$", max_length=6, label="6-digit code",
                            widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                          "autofocus": True}))


class DomainForm(forms.Form):
    name = forms.CharField(max_length=253)
    mail_servers = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text="The domain's own mail servers, host[:port], one per line. "
                                             "Mail for the domain is relayed there.")
    aliases = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="Alias domains, one per line.")

    def cleaned(self) -> tuple[str, list[str], list[str]]:
        d = self.cleaned_data
        return d["name"], _lines(d["mail_servers"]), _lines(d["aliases"])


class UserOptionsForm(forms.ModelForm):
    class Meta:
        model = UserOptions
        fields = list(UserOptions.FIELDS)
        labels = {"view_quarantine": "Users may view their own quarantine",
                  "view_log": "Users may view their own message log",
                  "view_transcripts": "Users may view SMTP transcripts",
                  "manage_lists": "Users may manage their own allow/block lists",
                  "disable_antispam": "Users may disable anti-spam for themselves",
                  "require_totp": "Users must use two-factor login (TOTP)"}


class AccountForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)
    mailbox = forms.EmailField(required=False, help_text="The user's mailbox (required for users).")
    aliases = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One per line.")
    domains = forms.ModelMultipleChoiceField(queryset=Domain.objects.none(), required=False,
                                             help_text="Domains a domain or quarantine administrator manages.")
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                               help_text="Leave empty to keep the current password (or to use mailbox login).")
    digest_schedule = forms.ChoiceField(choices=Account.DIGEST_SCHEDULES, initial="daily")
    digest_every_hours = forms.IntegerField(min_value=1, max_value=168, initial=6)

    def __init__(self, *args: Any, domains: Any, may_create_admins: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["domains"].queryset = domains
        if not may_create_admins:
            self.fields["role"].choices = [(Role.USER, "User")]
        self._domain_names = {d.name for d in domains}
        self._may_create_admins = may_create_admins

    def clean(self) -> dict[str, Any]:
        d = super().clean() or {}
        mailbox = (d.get("mailbox") or "").lower()
        if d.get("role") == Role.USER and not mailbox:
            self.add_error("mailbox", "A user needs a mailbox.")
        d["alias_list"] = _lines(d.get("aliases") or "")
        if not self._may_create_admins:
            for a in [mailbox, *d["alias_list"]]:
                if a and a.rpartition("@")[2] not in self._domain_names:
                    self.add_error("mailbox", f"{a} is not in one of your domains.")
        if d.get("password"):
            from django.contrib.auth.password_validation import validate_password

            try:
                validate_password(d["password"])
            except forms.ValidationError as e:
                self.add_error("password", e)
        return d


class CsvImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header: username,mailbox,aliases,role,domains,digest")


class VerificationSourceForm(forms.ModelForm):
    config_json = forms.CharField(required=False, label="Configuration (JSON)", widget=forms.Textarea(attrs={"rows": 4}),
                                  help_text='LDAP: {"url": "ldaps://dc1", "bind_dn": "...", "bind_password": "...", '
                                            '"base_dn": "dc=example,dc=com"}. SMTP: {"host": "mx.internal", "port": 25} '
                                            "(default: the domain's first mail server).")

    class Meta:
        model = VerificationSource
        fields = ["kind", "order", "allow_login", "auto_create", "cache_hours", "enabled"]

    def clean_config_json(self) -> dict[str, Any]:
        raw = self.cleaned_data.get("config_json") or "{}"
        try:
            val = json.loads(raw)
        except ValueError as e:
            raise forms.ValidationError(f"not valid JSON: {e}") from None
        if not isinstance(val, dict):
            raise forms.ValidationError("must be a JSON object")
        return val

    def clean(self) -> dict[str, Any]:
        d = super().clean() or {}
        cfg = d.get("config_json") or {}
        if d.get("kind") == "ldap" and not {"url", "base_dn"} <= set(cfg):
            self.add_error("config_json", "LDAP needs at least url and base_dn.")
        return d


class ListEntryForm(forms.Form):
    list = forms.ChoiceField(choices=[("allow", "Allow"), ("block", "Block")])
    kind = forms.ChoiceField(choices=[("sender", "Sender"), ("recipient", "Recipient"), ("host", "Host"),
                                      ("ip", "IP network")])
    value = forms.CharField(max_length=320, help_text="Address, @domain, host name or IP network.")
    domain = forms.ModelChoiceField(queryset=Domain.objects.none(), required=False, empty_label="(all domains)")
    comment = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, domains: Any, allow_global: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["domain"].queryset = domains
        if not allow_global:
            self.fields["domain"].required = True
            self.fields["domain"].empty_label = None


class ScriptForm(forms.Form):
    name = forms.RegexField(regex=r"^[A-Za-z0-9_.-]{1,100}$", max_length=100,
                            help_text="Letters, digits, '_', '.' and '-'.")
    domain = forms.ModelChoiceField(queryset=Domain.objects.none(), required=False, empty_label="(all domains)")
    position = forms.CharField(max_length=60, initial="after",
                               help_text="after, before, before:<layer> or after:<layer>")
    order = forms.IntegerField(initial=0)
    enabled = forms.BooleanField(required=False, initial=True)
    source = forms.CharField(widget=forms.Textarea(attrs={"class": "code", "spellcheck": "false"}))

    def __init__(self, *args: Any, domains: Any, allow_global: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["domain"].queryset = domains
        if not allow_global:
            self.fields["domain"].required = True
            self.fields["domain"].empty_label = None

    def clean_source(self) -> str:
        from webadmin.sieve_check import validate_sieve

        src = self.cleaned_data["source"]
        problems = validate_sieve(src)
        if problems:
            raise forms.ValidationError([f"line {p.line}, column {p.column}: {p.message}" for p in problems])
        return src


class AdminSettingsForm(forms.Form):
    quarantine_retention_days = forms.IntegerField(min_value=1, max_value=3650)
    log_retention_days = forms.IntegerField(min_value=1, max_value=3650)
    require_admin_totp = forms.BooleanField(required=False, label="Administrators must use two-factor login")
    public_url = forms.URLField(required=False, assume_scheme="https",
                                help_text="e.g. https://gateway.example.com (used in digest links)")
    digest_link_days = forms.IntegerField(min_value=1, max_value=60, help_text="How long digest links stay valid.")


class MySettingsForm(forms.Form):
    digest_schedule = forms.ChoiceField(choices=Account.DIGEST_SCHEDULES)
    digest_every_hours = forms.IntegerField(min_value=1, max_value=168)
    disable_antispam = forms.BooleanField(required=False, label="Do not filter spam for me")


# -- layer settings: a generic form built from a layer's Settings dataclass ----------------------
def layer_settings_form(settings_cls: type, initial: dict[str, Any], data: Any = None) -> forms.Form:
    """One field per dataclass field: booleans as checkboxes, enums and ``mode`` as choices,
    numbers as number inputs, tuples as one item per line, mappings as JSON. Validation is the
    layer's own (settings_from_dict), so the form cannot drift from the milter."""
    hints = typing.get_type_hints(settings_cls)
    fields: dict[str, forms.Field] = {}
    for f in dataclasses.fields(settings_cls):
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        help_text = f"default: {_show(default)}"
        origin = typing.get_origin(tp)
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = type(None) in typing.get_args(tp)
        base = args[0] if optional and len(args) == 1 else tp
        if f.name == "mode":
            fields[f.name] = forms.ChoiceField(choices=[("on", "on: act"), ("score", "score only"), ("off", "off")],
                                               help_text=help_text)
        elif base is bool:
            fields[f.name] = forms.BooleanField(required=False, help_text=help_text)
        elif isinstance(base, type) and issubclass(base, enum.Enum):
            fields[f.name] = forms.ChoiceField(choices=[(m.value, m.value) for m in base], help_text=help_text)
        elif base is int:
            fields[f.name] = forms.IntegerField(required=optional, help_text=help_text)
        elif base is float:
            fields[f.name] = forms.FloatField(required=optional, help_text=help_text)
        elif base is str:
            fields[f.name] = forms.CharField(required=False, help_text=help_text)
        elif typing.get_origin(base) is tuple or origin is tuple:
            fields[f.name] = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                             help_text=help_text + " (one per line)")
        else:
            fields[f.name] = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                             help_text=help_text + " (JSON)")
        fields[f.name].label = f.name.replace("_", " ").capitalize()
    form_cls = type("LayerSettingsForm", (forms.Form,), dict(fields))  # the metaclass consumes its dict
    init = {}
    for name, field in fields.items():
        v = initial.get(name)
        if isinstance(field.widget, forms.Textarea):
            if isinstance(v, (list, tuple)) and "one per line" in (field.help_text or ""):
                v = "\n".join(str(x) for x in v)
            elif v is not None and not isinstance(v, str):
                v = json.dumps(v)
        if isinstance(v, enum.Enum):
            v = v.value
        init[name] = v
    return form_cls(data=data, initial=init)  # type: ignore[no-any-return]


def layer_values_from_form(settings_cls: type, form: forms.Form) -> dict[str, Any]:
    hints = typing.get_type_hints(settings_cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings_cls):
        v = form.cleaned_data.get(f.name)
        field = form.fields[f.name]
        if isinstance(field.widget, forms.Textarea):
            if "one per line" in (field.help_text or ""):
                v = _lines_keep(v or "")
                item = (typing.get_args(hints[f.name]) or (str,))[0]
                if item in (int, float):
                    try:
                        v = [item(x) for x in v]
                    except ValueError:
                        pass  # settings_from_dict reports the field
            else:
                try:
                    v = json.loads(v) if v else None
                except ValueError:
                    form.add_error(f.name, "not valid JSON")
                    continue
        if v is None:
            continue
        out[f.name] = v
    return out


def _lines_keep(text: str) -> list[str]:
    return [x.strip() for x in text.splitlines() if x.strip()]


def _show(v: Any) -> str:
    if isinstance(v, enum.Enum):
        return str(v.value)
    if isinstance(v, tuple):
        return ", ".join(str(x) for x in v) or "(none)"
    return str(v)
