"""Security → Train Bayes in real Chromium: a global administrator uploads an mbox of spam, the
progress page fills its bar to 100 % and says what was learned, and the anti-spam state shows
the scope's new counts."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.store.memory import MemoryStore
from tests.browser.conftest import login, shot
from tests.django.conftest import World
from tests.django.test_bayes_training_upload import _mbox, _msg
from tests.unit.antispam.helpers import store  # noqa: F401 - fixture: a fresh default state store

pytestmark = pytest.mark.browser


def test_it_uploads_a_mailbox_and_shows_the_training_to_the_end(page: Any, live_server: Any, bworld: World,
                                                                 store: MemoryStore,  # noqa: F811 - the fixture
                                                                 tmp_path: Any) -> None:
    mbox = tmp_path / "Junk.mbox"
    mbox.write_bytes(_mbox([_msg(i) for i in range(200)]))
    base = live_server.url
    login(page, base, "root")
    page.goto(f"{base}/security/antispam/")
    page.click("#train-link")
    page.set_input_files("#t-file", str(mbox))
    page.check("input[name=label][value=spam]")
    page.select_option("#t-scope", "dom:a.example")
    page.click("button:has-text('Upload and learn')")
    page.locator("#train-job[data-state='done']").wait_for(timeout=30_000)  # (the page reloads itself)
    assert page.locator("#train-progress").get_attribute("value") == "100"
    assert "200 of 200 messages (100 %): 200 learned, 0 already known." in page.locator("#train-counts").inner_text()
    shot(page, "bayes-training-done")
    page.click("a:has-text('Anti-spam state')")
    row = page.locator("tr[data-scope='dom:a.example']")
    assert row.locator("td").nth(1).inner_text() == "200"
