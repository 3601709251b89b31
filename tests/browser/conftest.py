"""Real Chromium (Debian's /usr/bin/chromium) driven by Playwright against pytest-django's
live_server. Recipe: ../shared/recipes/services.md section 4."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.django.conftest import World, make_world


CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--disable-default-apps",
        "--disable-domain-reliability", "--metrics-recording-only"]
SHOTS = Path(os.environ.get("BULWARK_SCREENSHOTS", "var/screenshots"))
PASSWORD = "Correct-horse-9"


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """One Chromium per test. Playwright's sync API runs an event loop in this thread while it
    is started; the ORM calls the test itself makes meanwhile are synchronous and safe, so
    Django's async guard is relaxed for exactly that time (never for other tests)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium not installed (apt-get install -y chromium fonts-liberation)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(transactional_db: Any, browser: Any) -> Iterator[Any]:
    # Requested after the database fixture, so Playwright stops before the database is flushed.
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    ctx.close()


@pytest.fixture
def bworld(transactional_db: Any, settings: Any, tmp_path: Path) -> World:
    import dataclasses

    settings.GATEWAY = dataclasses.replace(settings.GATEWAY, data_dir=tmp_path)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.core.cache import cache

    cache.clear()
    (tmp_path / "quarantine").mkdir()
    return make_world(tmp_path)


def login(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(base + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
