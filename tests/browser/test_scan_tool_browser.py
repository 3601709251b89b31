"""Security → Scan a message in real Chromium: an administrator pastes a message, the result
page reloads itself until the scan is done, then shows the verdict and the symbol that scored;
"Scan again" and "Change and scan" start from that input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import login, shot
from tests.django.conftest import World
from tests.django.test_scan_tool import quick_policy

pytestmark = pytest.mark.browser


def test_it_scans_a_pasted_message(page: Any, live_server: Any, bworld: World) -> None:
    quick_policy(bworld.data_dir)
    base = live_server.url
    login(page, base, "root")
    page.goto(f"{base}/security/")
    page.click("a.task:has-text('Scan a message')")
    page.fill("#s-message", "From: a@sender.test\nTo: user@a.example\nSubject: news\n\nyou won a <b>prize</b>\n")
    page.fill("#s-ip", "192.0.2.8")
    page.click("#scan-form button[type=submit]")
    page.wait_for_selector("#scan-state[data-state=done]", timeout=60_000)
    assert page.locator("#scan-action").inner_text() == "quarantine"
    assert page.locator("tr[data-symbol=LOCAL_PRIZE]").count() == 1
    assert float(page.locator("#scan-score").inner_text()) >= 6.5
    shot(page, "scan-result")
    page.click("#learn-spam")
    page.wait_for_selector("#scan-learned")
    assert "global, dom:a.example" in page.locator("#scan-learned").inner_text()
    first = page.url
    page.click("#scan-again")  # the same message and settings: a new scan, the same verdict
    page.wait_for_url(lambda url: url != first and "/security/antispam/scan/" in url)
    page.wait_for_selector("#scan-state[data-state=done]", timeout=60_000)
    assert page.locator("tr[data-symbol=LOCAL_PRIZE]").count() == 1
    page.click("#scan-change")  # the form again, filled in with that input
    assert "you won a <b>prize</b>" in page.locator("#s-message").input_value()
    assert page.locator("#s-ip").input_value() == "192.0.2.8"
    page.fill("#s-message", "")
    page.click("#scan-form button[type=submit]")  # nothing pasted: refused, with the reason
    assert "Paste a message" in page.locator("#scan-error").inner_text()
