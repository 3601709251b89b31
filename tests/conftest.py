"""Suite-wide setup: every tier runs against the backend chosen by the environment (SQLite and
the embedded store by default; PostgreSQL + Redis when GATEWAY_DATABASE_URL/GATEWAY_REDIS_URL
are set by scripts/with-services.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _celery_eager_in_tests() -> None:
    # Tests call tasks synchronously; the worker itself is exercised by the integration tier.
    from config.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
