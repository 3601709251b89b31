"""Security → Anti-spam state in real Chromium: a global administrator sees what a Bayes scope
learned, forgets it through the confirmation page, and the scope is gone from the list."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.store.memory import MemoryStore
from tests.browser.conftest import login, shot
from tests.django.conftest import World
from tests.django.test_antispam_state import _counts, _learn
from tests.unit.antispam.helpers import store  # noqa: F401 - fixture: a fresh default state store

pytestmark = pytest.mark.browser


def test_it_shows_a_learned_scope_and_forgets_it(page: Any, live_server: Any, bworld: World,
                                                 store: MemoryStore) -> None:  # noqa: F811 - the fixture
    _learn(store, ("dom:a.example", "global"), spam=2, ham=1)
    base = live_server.url
    login(page, base, "root")
    page.goto(f"{base}/security/")
    page.click("a.task:has-text('Anti-spam state')")
    row = page.locator("tr[data-scope='dom:a.example']")
    assert row.locator("td").nth(1).inner_text() == "2" and row.locator("td").nth(2).inner_text() == "1"
    row.locator("a:has-text('Forget')").click()
    page.wait_for_load_state()
    assert "Forget what dom:a.example learned" in page.locator("h1").inner_text()
    page.click("#confirm")
    page.wait_for_load_state()
    assert "dom:a.example: everything it learned is forgotten" in page.locator("ul.messages").inner_text()
    assert page.locator("tr[data-scope='dom:a.example']").count() == 0
    assert page.locator("tr[data-scope='global']").count() == 1
    assert _counts(store, "dom:a.example") == (0, 0) and _counts(store, "global") == (2, 1)
    shot(page, "antispam-state-after-wipe")
