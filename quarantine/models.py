"""Quarantined messages: the bytes live in the storage backend (filesystem by default, written
and fsynced by the milter before it answers); these rows are the searchable metadata."""

from __future__ import annotations

from django.db import models


class QuarantinedMessage(models.Model):
    QUEUES = [("user", "User quarantine"), ("admin", "Admin quarantine")]
    qid = models.CharField(max_length=40, unique=True)
    log_id = models.CharField(max_length=32, db_index=True)
    queue = models.CharField(max_length=5, choices=QUEUES, db_index=True)
    created = models.DateTimeField(db_index=True)
    mail_from = models.CharField(max_length=320, blank=True)
    header_from = models.CharField(max_length=500, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField(default=0)
    score = models.FloatField(default=0.0)
    direction = models.CharField(max_length=10, blank=True)
    storage_path = models.CharField(max_length=500)

    class Meta:
        ordering = ["-created", "-id"]


class QuarantineRecipient(models.Model):
    STATUSES = [("held", "Held"), ("released", "Released"), ("deleted", "Deleted")]
    message = models.ForeignKey(QuarantinedMessage, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=320, db_index=True)
    domain = models.CharField(max_length=253, db_index=True)
    status = models.CharField(max_length=10, choices=STATUSES, default="held", db_index=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "address"], name="uniq_quarantine_rcpt")]
