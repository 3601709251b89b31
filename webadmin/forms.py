"""Forms of the web admin. Parsing only; changes go through webadmin.services ``do_*``."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import typing
from typing import Any

from django import forms
from django.urls import reverse

from gateway_milter.layers.base import SettingsError
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


class IdsField(forms.ModelMultipleChoiceField):
    """Objects chosen by primary key, where a posted value that cannot be one (not a number, or
    more digits than a 64-bit key has) is refused as an invalid choice: Django queries the
    values as given, and SQLite cannot bind a number over 2**63 (OverflowError, a 500)."""

    def _check_values(self, value: Any) -> Any:
        for pk in value:
            text = str(pk)
            if not text.isdigit() or len(text) > 18:
                raise forms.ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value",
                                            params={"pk": text[:40]})
        return super()._check_values(value)


class AccountForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)
    mailbox = forms.EmailField(required=False, help_text="The user's mailbox (required for users).")
    aliases = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One per line.")
    domains = IdsField(queryset=Domain.objects.none(), required=False,
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
# Every field shows its value in a form its own parser reads back, so a page saved unchanged
# stores the same settings: lists of plain values one per line, lists of mappings (DNSBL and
# URIBL zones) one JSON object per line, mappings as JSON. Never a Python repr.
JSON_LINES_HELP = ("One JSON object per line, e.g. {\"zone\": \"example.net\", \"weight\": 2} "
                   "(double quotes, no trailing commas); an error names its line.")


class LinesField(forms.CharField):
    """A list of plain values (``tuple[str, ...]``), one per line; blank lines are skipped."""

    widget = forms.Textarea(attrs={"rows": 3})

    def __init__(self, item: type = str, **kwargs: Any) -> None:
        self.item = item
        super().__init__(required=False, strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return "\n".join(str(x) for x in value)
        return value

    def to_python(self, value: Any) -> list[Any]:  # type: ignore[override]
        out: list[Any] = []
        for n, line in enumerate(str(value or "").splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            if self.item in (int, float):
                try:
                    out.append(self.item(line))
                except ValueError:
                    raise forms.ValidationError(f"line {n}: {line!r} is not a number") from None
            else:
                out.append(line)
        return out


def _json_error(e: json.JSONDecodeError) -> str:
    return f"line {e.lineno}, column {e.colno}: {e.msg}"


def _json_kind(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true or false"}.get(
        type(v), "null" if v is None else "a number")


def _zone_first(x: Any) -> Any:
    """An object's ``zone`` first, the rest as stored (PostgreSQL's jsonb keeps keys in its own
    order: the line a reader scans for starts with what names it)."""
    if isinstance(x, dict) and "zone" in x:
        return {"zone": x["zone"], **{k: v for k, v in x.items() if k != "zone"}}
    return x


class JsonLinesField(forms.CharField):
    """A list of mappings (``tuple[dict[str, Any], ...]``): one JSON object per line, blank
    lines skipped. ``line_of`` maps an item's index back to its line for error messages."""

    # wrap="off": a long zone stays one visual line, so "line 3" in an error is the third row seen
    widget = forms.Textarea(attrs={"rows": 4, "class": "code", "spellcheck": "false", "wrap": "off"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return "\n".join(json.dumps(_zone_first(x), ensure_ascii=False) for x in value)
        return value

    def to_python(self, value: Any) -> list[Any]:  # type: ignore[override]
        out: list[Any] = []
        errors: list[str] = []
        for n, line in enumerate(str(value or "").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"line {n}: {e.msg} (column {e.colno})")
                continue
            if not isinstance(item, dict):
                errors.append(f"line {n}: must be a JSON object, not {_json_kind(item)}")
                continue
            out.append(item)
        if errors:
            raise forms.ValidationError(errors)
        return out

    @staticmethod
    def line_of(text: str, index: int) -> int | None:
        lines = [n for n, line in enumerate(str(text or "").splitlines(), 1) if line.strip()]
        return lines[index] if 0 <= index < len(lines) else None


class JsonField(forms.CharField):
    """Any other structured value (``dict[str, float]`` scores, ...) as one JSON document."""

    widget = forms.Textarea(attrs={"rows": 3, "class": "code", "spellcheck": "false"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    def to_python(self, value: Any) -> Any:
        if not str(value or "").strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise forms.ValidationError(f"not valid JSON: {_json_error(e)}") from None


_SCALARS = (str, int, float)
_DURATIONS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def human_seconds(seconds: float) -> str:
    """A number of seconds as a person says it: ``3110400`` -> ``36 days``, ``90`` -> ``1.5
    minutes`` (the largest unit of which there is at least one; app.js says the same)."""
    for size, name in _DURATIONS:
        if abs(seconds) >= size or size == 1:
            n = round(seconds / size, 1)
            text = f"{n:g}"
            return f"{text} {name}" + ("" if text == "1" else "s")
    return ""  # (unreachable: the last unit takes every value)


def _in_seconds(f: dataclasses.Field[Any]) -> bool:
    """A setting that is a number of seconds: ``unit`` metadata ``s``, or a name ending in ``_s``."""
    return f.metadata.get("unit") == "s" or f.name.endswith("_s")


# a multi-line setting's ``validate`` metadata -> the API that checks it as it is typed
VALIDATE_URLS = {"rules": "api:rules-validate"}


def layer_settings_form(settings_cls: type, initial: dict[str, Any], data: Any = None,
                        meanings: dict[str, str] | None = None) -> forms.Form:
    """One field per dataclass field: booleans as checkboxes, enums and ``mode`` as choices,
    numbers as number inputs, lists of plain values one per line, lists of mappings one JSON
    object per line, other mappings as JSON. Validation is the layer's own (settings_from_dict),
    so the form cannot drift from the milter. ``meanings``: what each setting means (the
    layer's doc page, webadmin/layerdocs.py), shown before its default."""
    hints = typing.get_type_hints(settings_cls)
    fields: dict[str, forms.Field] = {}
    for f in dataclasses.fields(settings_cls):
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        help_text = f"default: {_show(default)}"
        if meanings and meanings.get(f.name):
            help_text = f"{meanings[f.name]} · {help_text}"
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = type(None) in typing.get_args(tp)
        base = args[0] if optional and len(args) == 1 else tp
        item = (typing.get_args(base) or (str,))[0]
        field: forms.Field
        if f.name == "mode":
            field = forms.ChoiceField(choices=[("on", "on: act"), ("score", "score only"), ("off", "off")])
        elif base is bool:
            field = forms.BooleanField(required=False)
        elif isinstance(base, type) and issubclass(base, enum.Enum):
            field = forms.ChoiceField(choices=[(m.value, m.value) for m in base])
        elif base is int:
            field = forms.IntegerField(required=False)
        elif base is float:
            field = forms.FloatField(required=False)
        elif base is str and f.metadata.get("multiline"):  # (rules' local_rules: a file's text)
            attrs = {"rows": 12, "class": "code", "spellcheck": "false", "wrap": "off"}
            validate = VALIDATE_URLS.get(f.metadata.get("validate", ""))
            if validate:  # checked as the administrator types (app.js), problems listed under it
                attrs |= {"data-validate": reverse(validate), "data-problems": f"id_{f.name}-problems"}
            field = forms.CharField(required=False, strip=False, empty_value="", widget=forms.Textarea(attrs=attrs))
            field.validate_url = validate  # type: ignore[attr-defined]
        elif base is str:
            field = forms.CharField(required=False, strip=False, empty_value=None if optional else "")
        elif typing.get_origin(base) in (tuple, list) and item in _SCALARS:
            field = LinesField(item)
            help_text += " (one per line)"
        elif typing.get_origin(base) in (tuple, list) and (item is dict or typing.get_origin(item) is dict):
            field = JsonLinesField()
            help_text += ". " + JSON_LINES_HELP
        else:
            field = JsonField()
            help_text += " (JSON)"
        if base in (int, float) and _in_seconds(f):  # the duration shown beside it as it is typed (app.js)
            field.widget.attrs["data-unit"] = "s"
            if isinstance(default, (int, float)) and default >= 60:
                help_text += f" ({human_seconds(default)})"
        field.help_text = help_text
        field.label = f.name.replace("_", " ").capitalize()
        # An empty optional value means None (stored, so a domain can override a global value
        # with "none"); an empty required number means the default.
        field.allows_none = optional  # type: ignore[attr-defined]
        fields[f.name] = field
    form_cls = type("LayerSettingsForm", (forms.Form,), dict(fields))  # the metaclass consumes its dict
    init = {}
    for name, field in fields.items():
        v = initial.get(name)
        if isinstance(v, enum.Enum):
            v = v.value
        if isinstance(field, (LinesField, JsonLinesField, JsonField)):
            v = field.prepare_value(v)  # text in form.initial too, as a browser would send it
        init[name] = v
    return form_cls(data=data, initial=init)  # type: ignore[no-any-return]


def layer_values_from_form(settings_cls: type, form: forms.Form) -> dict[str, Any]:
    """The settings dict of a valid form. An empty number or JSON mapping is left out (the
    default, or the global value for a domain); an empty optional value is stored as None."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings_cls):
        v = form.cleaned_data.get(f.name)
        if v is None and not getattr(form.fields[f.name], "allows_none", False):
            continue
        out[f.name] = v
    return out


def add_settings_error(form: forms.Form, error: SettingsError, prefix: str = "") -> None:
    """Attach a layer's SettingsError to the field its path starts with: ``zones[1].weight``
    goes to ``zones`` with the path (and, for one JSON object per line, the line) in the message.
    Paths naming no field (the layer as a whole) are form-wide errors."""
    path = error.path.removeprefix(prefix)
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", path)
    name = m.group(0) if m else ""
    if name not in form.fields:
        form.add_error(None, f"{path}: {error.message}" if path else error.message)
        return
    if path == name:
        form.add_error(name, error.message)
        return
    where = path
    idx = re.match(rf"{name}\[(\d+)\]", path)
    if idx and isinstance(form.fields[name], JsonLinesField):
        line = JsonLinesField.line_of(form.data.get(name, ""), int(idx.group(1)))
        if line is not None:
            where = f"line {line} ({path})"
    form.add_error(name, f"{where}: {error.message}")


def _show(v: Any) -> str:
    if isinstance(v, enum.Enum):
        return str(v.value)
    if isinstance(v, (tuple, list)) and all(isinstance(x, _SCALARS) for x in v):
        return ", ".join(str(x) for x in v) or "(none)"
    if isinstance(v, (tuple, list, dict)):
        return json.dumps(v, ensure_ascii=False) if v else "(none)"
    if v is None:
        return "(none)"
    return str(v)
