"""``manage.py runworker``: background jobs.

With GATEWAY_REDIS_URL set this runs a Celery worker with the beat scheduler embedded
(``celery -A config worker -B``; on several nodes run beat once: see systemd/). Without Redis it
runs the same periodic tasks in-process on their schedule (the embedded default).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

log = logging.getLogger("bulwark.worker")


class Command(BaseCommand):
    help = "Run the background worker (Celery with Redis, or the embedded scheduler)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-beat", action="store_true", help="Celery mode: do not embed the beat scheduler")
        parser.add_argument("--once", action="store_true", help="embedded mode: run every task once and exit")

    def handle(self, *args: Any, **o: Any) -> None:
        if settings.GATEWAY.redis_url and not o["once"]:
            cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info"]
            if not o["no_beat"]:
                cmd += ["-B", "-s", str(settings.GATEWAY.data_dir / "celerybeat-schedule")]
            os.execv(sys.executable, cmd)
        self._embedded(o["once"])

    def _embedded(self, once: bool) -> None:
        from config.celery import app

        app.loader.import_default_modules()
        stop = {"flag": False}

        def on_term(signum: int, frame: object) -> None:
            stop["flag"] = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        schedule = {name: (entry["task"], float(entry["schedule"])) for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
        # frequent tasks run at once; daily and rarer ones (reports, key rotation) after one interval
        start = time.monotonic()
        next_run = {name: 0.0 if every <= 3600 else start + every for name, (_, every) in schedule.items()}
        self.stdout.write(f"embedded worker: {len(schedule)} periodic task(s)")
        while not stop["flag"]:
            now = time.monotonic()
            for name, (task_name, every) in schedule.items():
                if now < next_run[name]:
                    continue
                next_run[name] = now + every
                task = app.tasks.get(task_name)
                if task is None:
                    continue  # that area is not installed in this build
                try:
                    task.apply(throw=True)
                except Exception:
                    log.exception("periodic task %s failed", task_name)
            if once:
                return
            time.sleep(1.0)
