"""Policy and accounts. Every change goes through a ``do_*`` function in webadmin.services,
which republishes the policy snapshot the milter loads (no per-message queries)."""

from __future__ import annotations

from django.db import models


class Domain(models.Model):
    name = models.CharField(max_length=253, unique=True)
    mail_servers = models.JSONField(default=list, blank=True, help_text="host[:port] of the domain's own mail servers")
    aliases = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TrustedNetwork(models.Model):
    network = models.CharField(max_length=64, unique=True)
    comment = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.network


class ListEntry(models.Model):
    LISTS = [("allow", "Allow"), ("block", "Block")]
    KINDS = [("sender", "Sender"), ("recipient", "Recipient"), ("host", "Host"), ("ip", "IP network")]
    list = models.CharField(max_length=5, choices=LISTS)
    kind = models.CharField(max_length=10, choices=KINDS)
    value = models.CharField(max_length=320)
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="list_entries")
    comment = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["list", "kind", "value"]
        constraints = [
            models.UniqueConstraint(fields=["list", "kind", "value", "domain"], name="uniq_list_entry"),
        ]

    def __str__(self) -> str:
        return f"{self.list}/{self.kind}: {self.value}"


class LayerSetting(models.Model):
    """Settings of one layer, global (domain null) or as a per-domain override."""

    layer = models.CharField(max_length=40)
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="layer_settings")
    values = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["layer", "domain"], name="uniq_layer_setting")]


class GatewaySetting(models.Model):
    key = models.CharField(max_length=60, unique=True)
    value = models.JSONField()


class SieveScript(models.Model):
    name = models.CharField(max_length=100, unique=True)
    source = models.TextField()
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="scripts")
    position = models.CharField(max_length=60, default="after")
    order = models.IntegerField(default=0)
    enabled = models.BooleanField(default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]


class PublishedPolicy(models.Model):
    """An immutable compiled policy document; the milter loads the newest."""

    version = models.BigAutoField(primary_key=True)
    document = models.JSONField()
    fingerprint = models.CharField(max_length=32)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-version"]


# -- accounts, roles and delegation (docs/ui.md) ----------------------------------------------
class Role(models.TextChoices):
    GLOBAL_ADMIN = "global_admin", "Global administrator"
    DOMAIN_ADMIN = "domain_admin", "Domain administrator"
    QUARANTINE_ADMIN = "quarantine_admin", "Quarantine administrator"
    USER = "user", "User"


class Account(models.Model):
    """The Bulwark side of a login: its role, the domains it administers (domain and quarantine
    administrators) or the mailbox and aliases it owns (users). Access rules: webadmin/access.py."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="account")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.USER)
    domains = models.ManyToManyField(Domain, blank=True, related_name="admins")
    mailbox = models.CharField(max_length=320, blank=True, db_index=True)
    aliases = models.JSONField(default=list, blank=True)
    totp_secret = models.CharField(max_length=64, blank=True)
    totp_enabled = models.BooleanField(default=False)
    totp_last_step = models.BigIntegerField(default=0, help_text="last accepted time step (no code reuse)")
    options = models.JSONField(default=dict, blank=True, help_text="per-user overrides of the user options")
    DIGEST_SCHEDULES = [("never", "Never"), ("hours", "Every N hours"), ("daily", "Daily"), ("weekly", "Weekly")]
    digest_schedule = models.CharField(max_length=6, choices=DIGEST_SCHEDULES, default="daily")
    digest_every_hours = models.PositiveIntegerField(default=6)
    digest_last_sent = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=10, default="local", help_text="how the account was created")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user.username} ({self.role})"

    @property
    def addresses(self) -> list[str]:
        out = [self.mailbox.lower()] if self.mailbox else []
        out += [a.lower() for a in self.aliases if isinstance(a, str) and a]
        return out

    @property
    def is_admin(self) -> bool:
        return self.role != Role.USER


class UserOptions(models.Model):
    """Default user options, global (domain null) or per domain; an account may override."""

    domain = models.OneToOneField(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="user_options")
    view_quarantine = models.BooleanField(default=True)
    view_log = models.BooleanField(default=True)
    view_transcripts = models.BooleanField(default=False)
    manage_lists = models.BooleanField(default=True)
    disable_antispam = models.BooleanField(default=False)
    require_totp = models.BooleanField(default=False, help_text="users of this domain must use TOTP")

    FIELDS = ("view_quarantine", "view_log", "view_transcripts", "manage_lists", "disable_antispam", "require_totp")


class VerificationSource(models.Model):
    """One way to learn whether a recipient exists, tried in ``order`` per domain."""

    KINDS = [("local", "Local user list"), ("ldap", "LDAP / Active Directory"), ("smtp", "SMTP callout")]
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="verification_sources")
    order = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=5, choices=KINDS)
    # ldap: url, bind_dn, bind_password, base_dn, filter ("(mail={address})"), login_dn ("{address}")
    # smtp: host, port (defaults to the domain's first mail server)
    config = models.JSONField(default=dict, blank=True)
    allow_login = models.BooleanField(default=False, help_text="users may log in with their mailbox password")
    auto_create = models.BooleanField(default=True, help_text="create the user on first verified mail")
    cache_hours = models.PositiveIntegerField(default=24)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["domain__name", "order", "id"]


class VerifiedAddress(models.Model):
    """Cache of verification answers; re-checked after the source's ``cache_hours``."""

    address = models.CharField(max_length=320, unique=True)
    exists = models.BooleanField()
    source = models.CharField(max_length=10)
    checked = models.DateTimeField()


class AdminSettings(models.Model):
    """Web-side settings (a single row): retention and how digest links are built."""

    quarantine_retention_days = models.PositiveIntegerField(default=30)
    log_retention_days = models.PositiveIntegerField(default=90)
    require_admin_totp = models.BooleanField(default=True)
    public_url = models.CharField(max_length=200, blank=True, help_text="https://host of this web admin, for digests")
    digest_link_days = models.PositiveIntegerField(default=7)

    @classmethod
    def get(cls) -> AdminSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class UserListEntry(models.Model):
    """A user's own allow/block entry for a sender pattern. Kept apart from ListEntry because
    the policy's lists are global or per domain: a user's choice must not apply to the whole
    domain. (Enforcement per recipient needs recipient-scoped lists in the policy; docs/ui.md.)"""

    LISTS = [("allow", "Allow"), ("block", "Block")]
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="list_entries")
    list = models.CharField(max_length=5, choices=LISTS)
    value = models.CharField(max_length=320)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["list", "value"]
        constraints = [models.UniqueConstraint(fields=["account", "list", "value"], name="uniq_user_list_entry")]
