"""State changes of the policy: every one is a ``do_*`` function in one transaction that ends by
publishing a new policy snapshot (the milter picks it up within GATEWAY_POLICY_POLL seconds)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from gateway_milter.layers.base import SettingsError
from gateway_milter.policy.snapshot import FORMAT_VERSION, PolicySnapshot, validate_document
from webadmin.addressing import is_mailbox
from webadmin.models import (
    Domain,
    GatewaySetting,
    LayerSetting,
    ListEntry,
    PublishedPolicy,
    SieveScript,
    TrustedNetwork,
)


_snapshot_cache: tuple[tuple[int, str], PolicySnapshot] | None = None


def current_snapshot() -> PolicySnapshot:
    """The policy the milter runs now: the last published snapshot (empty before the first).
    Kept by version and fingerprint: a page asks one short query, not the whole document and
    its parse, while the policy stays the same."""
    global _snapshot_cache
    head = PublishedPolicy.objects.order_by("-version").values_list("version", "fingerprint").first()
    if head is None:
        return PolicySnapshot.empty()
    cached = _snapshot_cache
    if cached is not None and cached[0] == head:
        return cached[1]
    row = PublishedPolicy.objects.filter(version=head[0]).first()
    if row is None:  # (removed meanwhile: read the newest again)
        row = PublishedPolicy.objects.order_by("-version").first()
        if row is None:
            return PolicySnapshot.empty()
    snap = PolicySnapshot.from_document(row.document, row.version)
    _snapshot_cache = ((row.version, row.fingerprint), snap)
    return snap


def build_policy_document(include_user_data: bool = True) -> dict[str, Any]:
    """The whole configuration as the documented policy document (docs/policy/file.md).

    ``include_user_data`` adds what users manage themselves in My Account (their own sender
    lists, anti-spam switched off): published to the milter, left out of ``policy export``.
    """
    gateway = {s.key: s.value for s in GatewaySetting.objects.all()}
    settings: dict[str, Any] = {}
    per_domain: dict[int, dict[str, Any]] = {}
    for ls in LayerSetting.objects.all():
        if ls.domain_id is None:
            settings[ls.layer] = ls.values
        else:
            per_domain.setdefault(ls.domain_id, {})[ls.layer] = ls.values
    domains = [
        {"name": d.name, "settings": per_domain.get(d.pk, {}), "mail_servers": list(d.mail_servers),
         "aliases": list(d.aliases)}
        for d in Domain.objects.all()
    ]
    names = {d.pk: d.name for d in Domain.objects.all()}
    lists = [
        {"list": e.list, "kind": e.kind, "value": e.value, "domain": names.get(e.domain_id) if e.domain_id else None,
         "comment": e.comment}
        for e in ListEntry.objects.all()
    ]
    scripts = [
        {"name": s.name, "source": s.source, "domain": names.get(s.domain_id) if s.domain_id else None,
         "position": s.position, "enabled": s.enabled}
        for s in SieveScript.objects.all()
    ]
    users: list[dict[str, Any]] = []
    if include_user_data:
        lists += _user_list_entries()
        users = _users_without_antispam()
    return {
        "format": FORMAT_VERSION,
        "users": users,
        "gateway": gateway,
        "settings": settings,
        "domains": domains,
        "trusted_networks": [n.network for n in TrustedNetwork.objects.all()],
        "lists": lists,
        "scripts": scripts,
    }


def _user_list_entries() -> list[dict[str, Any]]:
    from webadmin.models import UserListEntry

    out = []
    for e in UserListEntry.objects.select_related("account"):
        for addr in e.account.addresses:
            out.append({"list": e.list, "kind": "sender", "value": e.value, "domain": None,
                        "comment": "own list", "recipient": addr})
    return out


def _users_without_antispam() -> list[dict[str, Any]]:
    from webadmin.access import effective_user_options
    from webadmin.models import Account, Role

    out = []
    for acct in Account.objects.filter(role=Role.USER).exclude(mailbox=""):
        if not (acct.options or {}).get("antispam_off"):
            continue
        if effective_user_options(acct, acct.mailbox.rpartition("@")[2]).get("disable_antispam"):
            out.append({"addresses": acct.addresses, "disable_antispam": True})
    return out


def check_compiles(doc: dict[str, Any]) -> None:
    """Build the policy the milter would load from ``doc`` and compile its system scripts, for
    the global settings and every domain: a version the milter cannot load is never published
    (it would keep the version it has, and refuse every later one, saying so only in its log).
    Raises SettingsError."""
    try:
        from gateway_milter.sieve.policy import check_system_scripts
    except ImportError:  # (a build without the Sieve engine: the rule engine compiles nothing)
        return
    try:
        check_system_scripts(PolicySnapshot.from_document(doc))
    except Exception as e:  # noqa: BLE001 - any failure of the build: the milter would fail alike
        raise SettingsError("(policy)", f"these settings make a policy the milter cannot load: {e}") from None


def do_publish_policy(actor: str = "") -> PublishedPolicy:
    """Validate the current configuration and publish it as a new version."""
    import hashlib
    import json

    doc = validate_document(build_policy_document())
    check_compiles(doc)
    fp = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
    latest = PublishedPolicy.objects.order_by("-version").first()
    if latest is not None and latest.fingerprint == fp:
        return latest
    return PublishedPolicy.objects.create(document=doc, fingerprint=fp, created_by=actor[:150])


@transaction.atomic
def do_import_policy(raw: Any, actor: str = "") -> PublishedPolicy:
    """Replace the whole configuration by ``raw`` (a parsed YAML/JSON document).

    Validation happens first and covers everything; on any error a SettingsError naming the
    field is raised and nothing is changed.
    """
    doc = validate_document(raw)
    for layer, values in doc["settings"].items():
        check_settings_at_save(layer, values, f"settings.{layer}.")
    for i, d in enumerate(doc["domains"]):
        for layer, values in d["settings"].items():
            check_settings_at_save(layer, values, f"domains[{i}].settings.{layer}.", doc["settings"].get(layer))
    GatewaySetting.objects.all().delete()
    LayerSetting.objects.all().delete()
    ListEntry.objects.all().delete()
    SieveScript.objects.all().delete()
    TrustedNetwork.objects.all().delete()
    Domain.objects.all().delete()
    for k, v in doc["gateway"].items():
        GatewaySetting.objects.create(key=k, value=v)
    for layer, values in doc["settings"].items():
        LayerSetting.objects.create(layer=layer, domain=None, values=values)
    by_name: dict[str, Domain] = {}
    for d in doc["domains"]:
        dom = Domain.objects.create(name=d["name"], mail_servers=d["mail_servers"], aliases=d["aliases"])
        by_name[dom.name] = dom
        for layer, values in d["settings"].items():
            LayerSetting.objects.create(layer=layer, domain=dom, values=values)
    for n in doc["trusted_networks"]:
        TrustedNetwork.objects.create(network=n)
    ListEntry.objects.bulk_create([
        ListEntry(list=e["list"], kind=e["kind"], value=e["value"],
                  domain=by_name[e["domain"]] if e["domain"] else None, comment=e["comment"])
        for e in doc["lists"] if not e.get("recipient")  # users' own entries live in My Account
    ])
    for i, s in enumerate(doc["scripts"]):
        SieveScript.objects.create(name=s["name"], source=s["source"],
                                   domain=by_name[s["domain"]] if s["domain"] else None,
                                   position=s["position"], enabled=s["enabled"], order=i)
    return do_publish_policy(actor)


def do_add_list_entry(list_name: str, kind: str, value: str, domain: Domain | None = None, comment: str = "",
                      actor: str = "") -> ListEntry:
    from gateway_milter.policy.lists import validate_entry

    entry = validate_entry({"list": list_name, "kind": kind, "value": value,
                            "domain": domain.name if domain else None, "comment": comment}, "entry")
    with transaction.atomic():
        obj, _ = ListEntry.objects.get_or_create(list=entry.list, kind=entry.kind, value=entry.value, domain=domain,
                                                 defaults={"comment": entry.comment})
        do_publish_policy(actor)
    return obj


class SettingsPermissionError(SettingsError):
    """The actor may not set this field here (a global-only field, docs/ui.md)."""


def global_only_fields(layer: str) -> frozenset[str]:
    """The fields of ``layer`` that only a global administrator may set."""
    from gateway_milter import layers

    return layers.get(layer).Settings.global_only_fields


def _is_global_actor(by: Any, actor: str) -> bool:
    """``by`` (a User) or else the account named ``actor``. Neither (no user, no name): a
    system caller (manage.py, the bootstrap, tests), which may set anything. A name that
    matches no account is nobody, not the system: it may set no global-only field."""
    from django.contrib.auth.models import User

    from webadmin.access import principal

    if by is None and actor:
        by = User.objects.filter(username=actor).first()
        if by is None:
            return False
    return by is None or principal(by).is_global


def _keep_global_only(layer: str, cls: Any, values: dict[str, Any], domain: Domain) -> dict[str, Any]:
    """A non-global actor's values for ``domain`` with the global-only fields as they are:
    a value equal to the one in force is dropped (or kept as the global administrator stored
    it), a different one is refused."""
    from gateway_milter.layers.base import settings_from_dict, settings_to_dict

    base = LayerSetting.objects.filter(layer=layer, domain__isnull=True).first()
    row = LayerSetting.objects.filter(layer=layer, domain=domain).first()
    glob, stored = (base.values if base else {}), (row.values if row else {})
    fields = global_only_fields(layer)
    try:
        now = settings_to_dict(settings_from_dict(cls, {**glob, **stored}))
    except SettingsError:
        now = settings_to_dict(cls())
    asked = {k: v for k, v in values.items() if k in fields}
    if asked:  # compared as parsed values (a list and a tuple, 12 and 12.0 are the same)
        want = settings_to_dict(settings_from_dict(cls, {**glob, **stored, **asked}, f"settings.{layer}."))
        for k in sorted(asked):
            if want[k] != now[k]:
                raise SettingsPermissionError(f"settings.{layer}.{k}",
                                              f"only a global administrator may set {layer}.{k}")
    out = {k: v for k, v in values.items() if k not in fields}
    out.update({k: stored[k] for k in fields if k in stored})
    return out


REPLY_TEXT_FIELDS = ("reject_text", "reply_text")


def check_reply_texts(settings: Any) -> None:
    """The SMTP reply texts of a layer's settings as a reply carries them (RFC 5321 4.2:
    printable ASCII on one line, at most ``REPLY_TEXT_MAX`` characters) and not empty. Checked
    when saved, not when a policy loads: a text saved before would have stopped the policy.
    Before, an empty text answered "Message rejected by policy" (a greylisting deferral read
    as a refusal), other letters went out as "?", and a long text was cut."""
    from gateway_milter.verdict import REPLY_TEXT_MAX, smtp_reply_text

    for name in REPLY_TEXT_FIELDS:
        text = getattr(settings, name, None)
        if not isinstance(text, str):
            continue
        if not text.strip():
            raise SettingsError(name, "must not be empty: it is the text of the SMTP reply")
        if len(text) > REPLY_TEXT_MAX:
            raise SettingsError(name, f"at most {REPLY_TEXT_MAX} characters (an SMTP reply line)")
        if smtp_reply_text(text) != " ".join(text.split()):
            raise SettingsError(name, "must be printable ASCII (an SMTP reply carries no other letters)")


def shown_settings(layer: str, values: dict[str, Any], domain: Domain | None, is_global: bool) -> dict[str, Any]:
    """A layer's settings as a domain administrator may read them: the spam-trap addresses of
    their own domain (and its aliases) and the ``local@`` ones, not the other tenants' (a trap
    is worth only as long as it is secret; each domain's admin saw every tenant's). A global
    administrator reads them all."""
    if is_global or domain is None or layer != "spamtrap" or "addresses" not in values:
        return values
    names = {domain.name.lower().rstrip("."), *(a.lower().rstrip(".") for a in domain.aliases or [])}

    def mine(a: str) -> bool:
        a = str(a).strip().lower()
        return a.endswith("@") or a.rpartition("@")[2].rstrip(".") in names

    return {**values, "addresses": [a for a in values["addresses"] if mine(a)]}


def check_settings_at_save(layer: str, values: dict[str, Any], path: str, base: dict[str, Any] | None = None) -> list[str]:
    """Validate ``values`` (a domain's merged with ``base``, the global ones, as they are used)
    and run the layer's save-time checks (the files it names); a SettingsError names ``path`` +
    the field. Returns the warnings."""
    from gateway_milter import layers
    from gateway_milter.layers.base import settings_from_dict

    settings = settings_from_dict(layers.get(layer).Settings, {**(base or {}), **values}, path)
    try:
        check_reply_texts(settings)
        return settings.check_at_save()
    except SettingsError as e:
        raise SettingsError(f"{path}{e.path}", e.message) from None


def do_set_layer_settings(layer: str, values: dict[str, Any], domain: Domain | None = None, actor: str = "",
                          by: Any = None) -> list[str]:
    """Replace one layer's settings (global or for a domain); validated before saving.

    ``by`` (a User; else the account named ``actor``) must be a global administrator to change
    the layer's global-only fields or the global settings; a domain administrator's values
    keep those fields as they are. Files the settings name are checked now (they exist and
    parse). Returns warnings for the administrator; on any error nothing is saved."""
    from gateway_milter import layers
    from gateway_milter.layers.base import settings_from_dict

    if layer not in layers.REGISTRY:
        raise SettingsError(f"settings.{layer}", "unknown layer")
    cls = layers.get(layer).Settings
    # a domain's values are used merged with the global ones: checked so (a reject_score of its
    # own below the global quarantine_score is an error, one above it is not)
    glob = LayerSetting.objects.filter(layer=layer, domain=None).first() if domain is not None else None
    base = glob.values if glob is not None else {}
    if not _is_global_actor(by, actor):
        if domain is None:
            raise SettingsPermissionError(f"settings.{layer}", "only a global administrator may change the "
                                                               "global settings")
        values = _keep_global_only(layer, cls, values, domain)
        merged = settings_from_dict(cls, {**base, **values}, f"settings.{layer}.")
        try:
            check_reply_texts(merged)  # (reply texts are a domain's own: checked for its admin too)
        except SettingsError as e:
            raise SettingsError(f"settings.{layer}.{e.path}", e.message) from None
        warnings: list[str] = []  # the files checked at save are global-only: kept as they are
    else:
        warnings = check_settings_at_save(layer, values, f"settings.{layer}.", base)
    with transaction.atomic():
        LayerSetting.objects.update_or_create(layer=layer, domain=domain, defaults={"values": values})
        do_publish_policy(actor)
    return warnings


# -- accounts, domains, scripts and lists from the web admin (docs/ui.md) ------------------------
class AccountError(ValueError):
    pass


def do_save_domain(domain: Domain | None, name: str, mail_servers: list[str], aliases: list[str],
                   actor: str = "") -> Domain:
    """Create or change a domain; the policy is validated and republished in the same
    transaction, so a bad name or server list changes nothing."""
    with transaction.atomic():
        if domain is None:
            domain = Domain(name=name.strip().lower())
        else:
            domain.name = name.strip().lower()
        domain.mail_servers = [s.strip() for s in mail_servers if s.strip()]
        domain.aliases = [a.strip().lower() for a in aliases if a.strip()]
        domain.save()
        do_publish_policy(actor)
    return domain


def do_delete_domain(domain: Domain, actor: str = "") -> None:
    with transaction.atomic():
        domain.delete()
        do_publish_policy(actor)


def do_delete_list_entry(entry: ListEntry, actor: str = "") -> None:
    with transaction.atomic():
        entry.delete()
        do_publish_policy(actor)


def do_save_script(script: SieveScript | None, *, name: str, source: str, domain: Domain | None,
                   position: str = "after", enabled: bool = True, order: int = 0, actor: str = "") -> SieveScript:
    with transaction.atomic():
        script = script or SieveScript()
        script.name, script.source, script.domain = name, source, domain
        script.position, script.enabled, script.order = position, enabled, order
        script.save()
        do_publish_policy(actor)
    return script


def do_delete_script(script: SieveScript, actor: str = "") -> None:
    with transaction.atomic():
        script.delete()
        do_publish_policy(actor)


def do_save_account(account: Any, *, username: str, role: str, mailbox: str = "", aliases: list[str] | None = None,
                    domains: list[Domain] | None = None, password: str | None = None,
                    options: dict[str, bool] | None = None, email: str = "", source: str = "local") -> Any:
    """Create or change an account and its Django user (password hashed by Django)."""
    from django.contrib.auth.models import User

    from webadmin.models import Account, Role

    if role not in Role.values:
        raise AccountError(f"unknown role {role!r}")
    if role == Role.USER and "@" not in mailbox:
        raise AccountError("a user needs a mailbox address")
    _check_account_names(username, [mailbox, *(aliases or [])])
    with transaction.atomic():
        if account is None:
            if User.objects.filter(username=username).exists():
                raise AccountError(f"user {username!r} already exists")
            user = User.objects.create_user(username=username, email=email or mailbox)
            account = Account(user=user)
        else:
            user = account.user
            if username != user.username and User.objects.filter(username=username).exists():
                raise AccountError(f"user {username!r} already exists")
            user.username = username
            user.email = email or mailbox or user.email
        if password:
            user.set_password(password)
        elif account.pk is None:
            user.set_unusable_password()
        user.save()
        account.role = role
        account.mailbox = mailbox.strip().lower()
        account.aliases = [a.strip().lower() for a in (aliases or []) if a.strip()]
        if options is not None:
            account.options = options
        account.source = account.source if account.pk else source
        account.save()
        account.domains.set((domains or []) if role in (Role.DOMAIN_ADMIN, Role.QUARANTINE_ADMIN) else [])
        if account.list_entries.exists() or (account.options or {}).get("antispam_off"):
            do_publish_policy(username)  # the user's own lists follow their addresses
    return account


def _check_account_names(username: str, addresses: list[str]) -> None:
    """The checks Django's own forms make of a user name (letters, digits and ``@.+-_``, at most
    150), and every address well-formed: the CSV import and the API bypass those forms, and a NUL
    or a longer name reached the database (PostgreSQL refuses both)."""
    from django.contrib.auth.validators import UnicodeUsernameValidator
    from django.core.exceptions import ValidationError

    if not 1 <= len(username) <= 150:
        raise AccountError("a user name has 1 to 150 characters")
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise AccountError(f"user name {username[:60]!r}: letters, digits and @ . + - _ only") from None
    for a in addresses:
        a = a.strip()
        if a and not is_mailbox(a):
            raise AccountError(f"{a[:60]!r} is not an email address")


def do_delete_account(account: Any) -> None:
    with transaction.atomic():
        had_user_data = account.list_entries.exists() or bool((account.options or {}).get("antispam_off"))
        account.user.delete()
        if had_user_data:
            do_publish_policy()


CSV_FIELDS = ("username", "mailbox", "aliases", "role", "domains", "digest")


def do_import_accounts_csv(text: str, allowed_domains: list[Domain], may_create_admins: bool,
                           actor: str = "") -> tuple[int, list[str]]:
    """Create users from CSV (header: username,mailbox,aliases,role,domains,digest; aliases and
    domains separated by spaces). Rows outside the importer's domains are refused, one error
    line per bad row; good rows are created."""
    import csv
    import io

    from webadmin.models import Role

    by_name = {d.name: d for d in allowed_domains}
    created, errors = 0, []
    reader = csv.DictReader(io.StringIO(text))
    try:
        missing = {"username", "mailbox"} - set(reader.fieldnames or [])
    except csv.Error as e:  # (a NUL, a field over the csv module's limit)
        return 0, [f"line {reader.line_num + 1}: not CSV: {e}"]
    if missing:
        return 0, [f"missing column(s): {', '.join(sorted(missing))}"]
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as e:  # the rest cannot be read reliably: the rows before it stand
            # (line_num counts the lines read whole: the bad one is the next)
            errors.append(f"line {reader.line_num + 1}: not CSV: {e}; the rows after it were not read")
            break
        n = reader.line_num
        try:
            role = (row.get("role") or Role.USER).strip()
            if role != Role.USER and not may_create_admins:
                raise AccountError("only a global administrator may create administrators")
            mailbox = (row.get("mailbox") or "").strip().lower()
            aliases = (row.get("aliases") or "").split()
            for a in [mailbox, *aliases]:
                if a and a.rpartition("@")[2] not in by_name:
                    raise AccountError(f"{a!r} is not in one of your domains")
            doms = []
            for d in (row.get("domains") or "").split():
                if d not in by_name:
                    raise AccountError(f"domain {d!r} is not one of your domains")
                doms.append(by_name[d])
            digest = (row.get("digest") or "").strip()
            if digest and digest not in ("never", "hours", "daily", "weekly"):  # (checked before the row is saved)
                raise AccountError(f"digest must be never, hours, daily or weekly, not {digest!r}")
            acct = do_save_account(None, username=(row.get("username") or mailbox).strip(), role=role,
                                   mailbox=mailbox, aliases=aliases, domains=doms, source="csv")
            if digest:
                acct.digest_schedule = digest
                acct.save(update_fields=["digest_schedule"])
            created += 1
        except AccountError as e:
            errors.append(f"line {n}: {e}")
    return created, errors


def do_autocreate_user(address: str) -> Any | None:
    """Create a user for a verified local address seen in mail (first verified mail)."""
    from webadmin.models import Account, Role
    from webadmin.verification import verify_address

    address = address.strip().lower()
    if Account.objects.filter(mailbox=address).exists():
        return None
    domain = Domain.objects.filter(name=address.rpartition("@")[2]).first()
    if domain is None or not domain.verification_sources.filter(enabled=True, auto_create=True).exists():
        return None
    if verify_address(address).exists is not True:
        return None
    try:
        return do_save_account(None, username=address, role=Role.USER, mailbox=address, source="auto")
    except AccountError:
        return None


def do_add_user_list_entry(account: Any, list_name: str, value: str) -> Any:
    """A user's own sender entry (validated like a policy list entry)."""
    from gateway_milter.policy.lists import validate_entry
    from webadmin.models import UserListEntry

    entry = validate_entry({"list": list_name, "kind": "sender", "value": value}, "entry")
    with transaction.atomic():
        obj, _ = UserListEntry.objects.get_or_create(account=account, list=entry.list, value=entry.value)
        do_publish_policy(getattr(account.user, "username", ""))
    return obj


def do_delete_user_list_entry(entry: Any) -> None:
    with transaction.atomic():
        entry.delete()
        do_publish_policy()


def do_save_user_settings(account: Any) -> None:
    """Save an account's own settings (digest schedule, anti-spam switch) and republish."""
    with transaction.atomic():
        account.save()
        do_publish_policy(getattr(account.user, "username", ""))
