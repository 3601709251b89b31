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
