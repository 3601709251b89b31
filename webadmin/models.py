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
