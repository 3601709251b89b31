"""Celery app. Tasks are thin, named ``area.verb``, idempotent, JSON payloads of ids."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
app = Celery("bulwark")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Explicit list of task modules (one per area, owned by that area).
app.conf.imports = (
    "webadmin.tasks",
    "webadmin.antispam_tasks",
    "quarantine.tasks",
    "reports.tasks",
    "reports.dmarc_tasks",
    "reports.ingest",
)
# Periodic tasks of the web side (digests check every 15 minutes whose schedule is due).
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    "quarantine-digests": {"task": "quarantine.send_digests", "schedule": 900.0},
    "quarantine-purge": {"task": "quarantine.purge_expired", "schedule": 3600.0},
    "msglog-purge": {"task": "reports.purge_log", "schedule": 3600.0},
    "users-autocreate": {"task": "reports.autocreate_users", "schedule": 3600.0},
}
