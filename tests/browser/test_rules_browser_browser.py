"""Security → Heuristic rules in real Chromium: a global administrator finds a rule that hit good
mail, gives it other points, and the list shows them once the rule set is rebuilt."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import login, shot
from tests.django.conftest import World
from tests.django.test_rules_browser import _log, _policy

pytestmark = pytest.mark.browser


def test_it_finds_a_rule_hitting_good_mail_and_lowers_its_points(page: Any, live_server: Any, bworld: World) -> None:
    _policy(bworld)
    _log(bworld, "a", "accept", ["LOCAL_NEWSLETTER"], 3)
    base = live_server.url
    login(page, base, "root")
    page.goto(f"{base}/security/")
    page.click("a.task:has-text('Heuristic rules')")
    page.select_option("#r-only", "good")
    page.click("#rules-search button[type=submit]")
    page.wait_for_load_state()
    row = page.locator("tr[data-rule='LOCAL_NEWSLETTER']")
    assert row.locator("a.good-hits").inner_text() == "3"
    assert page.locator("tr[data-rule]").count() == 1
    row.locator("a[title='Change its points']").click()
    page.wait_for_load_state()
    assert page.locator("#points-now").inner_text() == "1.500"
    page.fill("#p-points", "0.2")
    page.click("button:has-text('Set and publish')")
    page.wait_for_load_state()
    assert "LOCAL_NEWSLETTER: 0.2 points, published. The rule set is rebuilt" in page.locator("ul.messages").inner_text()
    for _ in range(50):  # (the rule set is rebuilt in the background)
        if page.locator("tr[data-rule='LOCAL_NEWSLETTER'] td").nth(1).inner_text() == "0.200":
            break
        page.wait_for_timeout(100)
        page.reload()
    assert page.locator("tr[data-rule='LOCAL_NEWSLETTER'] td").nth(1).inner_text() == "0.200"
    shot(page, "rules-points-lowered")
