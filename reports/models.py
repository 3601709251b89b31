"""The message log: one record per message (also those refused before DATA), written in batches
from the milter's journal (gateway_milter/store/msglog.py)."""

from __future__ import annotations

from django.db import models
from django.db.models import Value
from django.db.models.functions import Lower, StrIndex, Substr

ACTIONS = [(a, a) for a in ("accept", "reject", "tempfail", "discard", "quarantine")]
DIRECTIONS = [(d, d) for d in ("inbound", "outbound", "local", "relay")]


class MessageLog(models.Model):
    log_id = models.CharField(max_length=32, unique=True)
    time = models.DateTimeField(db_index=True)
    direction = models.CharField(max_length=10, choices=DIRECTIONS, db_index=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    client_name = models.CharField(max_length=255, blank=True)
    helo = models.CharField(max_length=255, blank=True)
    auth_user = models.CharField(max_length=255, blank=True)
    mail_from = models.CharField(max_length=320, blank=True, db_index=True)
    header_from = models.CharField(max_length=500, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    message_id = models.CharField(max_length=500, blank=True)
    queue_id = models.CharField(max_length=40, blank=True)
    size = models.BigIntegerField(default=0)
    score = models.FloatField(default=0.0)
    action = models.CharField(max_length=10, choices=ACTIONS, db_index=True)
    reason = models.CharField(max_length=500, blank=True)
    symbols = models.JSONField(default=list)
    trace = models.JSONField(default=list)
    transcript = models.JSONField(default=list)
    policy_version = models.BigIntegerField(default=0)
    node = models.CharField(max_length=100, blank=True)
    # The envelope sender's domain, computed by the database (so writers need not know it):
    # lets "sender @domain" searches and domain administrators' outbound view use an index.
    sender_domain = models.GeneratedField(
        expression=Lower(Substr("mail_from", StrIndex("mail_from", Value("@")) + 1)),
        output_field=models.CharField(max_length=320), db_persist=True, db_index=True)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["-time", "-id"], name="msglog_time_id"),
                   models.Index(fields=["score", "id"], name="msglog_score_id"),
                   models.Index(fields=["size", "id"], name="msglog_size_id")]


class MessageRecipient(models.Model):
    message = models.ForeignKey(MessageLog, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=320, db_index=True)
    domain = models.CharField(max_length=253, db_index=True)
    action = models.CharField(max_length=10, choices=ACTIONS)
    reply = models.CharField(max_length=500, blank=True)
    quarantine_id = models.CharField(max_length=40, blank=True)

    class Meta:
        indexes = [models.Index(fields=["domain", "message"], name="msgrcpt_domain")]
