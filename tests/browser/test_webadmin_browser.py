"""The web admin in real Chromium: every role logs in, tenants stay apart, the Sieve editor
flags errors at the right line, the dashboard charts render with data and lead into the log."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from tests.browser.conftest import login, shot
from tests.django.conftest import World

pytestmark = pytest.mark.browser


def test_it_logs_in_as_each_role_and_shows_their_menus(page: Any, live_server: Any, bworld: World) -> None:
    from webadmin.models import Account, AdminSettings

    base = live_server.url
    expected = {
        "dadmin_a": ["Dashboard", "Setup / Users", "Security", "Messages / Queues", "Logging", "Reports"],
        "qadmin_a": ["Dashboard", "Messages / Queues", "Logging", "Reports"],
        "user@a.example": ["My Account", "Quarantine", "Message log", "My lists", "Settings"],
    }
    for username, menus in expected.items():
        login(page, base, username)
        got = page.locator("nav.menu a").all_inner_texts()
        assert got == menus, (username, got)
        page.click("text=Log out")
        page.wait_for_url("**/accounts/logout/")
    # The global administrator logs in with TOTP.
    s = AdminSettings.get()
    s.require_admin_totp = True
    s.save()
    acct = Account.objects.get(user__username="root")
    acct.totp_secret, acct.totp_enabled = pyotp.random_base32(), True
    acct.save()
    login(page, base, "root")
    assert "/accounts/login/totp/" in page.url
    page.fill("input[name=code]", pyotp.TOTP(acct.totp_secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard/")
    assert page.locator("nav.menu a").count() == 6
    assert page.locator("#server-status .status").count() == 6


def test_it_keeps_a_domain_admin_out_of_another_domains_messages(page: Any, live_server: Any, bworld: World) -> None:
    from quarantine.models import QuarantineRecipient

    base = live_server.url
    login(page, base, "dadmin_a")
    page.goto(base + "/messages/quarantine/")
    rows = page.locator("#quarantine-table tbody tr[data-qid]")
    assert rows.count() == 1
    assert bworld.a.marker in rows.first.inner_text()
    assert bworld.b.marker not in page.content()
    page.goto(base + "/logging/log/")
    assert bworld.b.marker not in page.content()
    resp = page.goto(base + f"/messages/quarantine/{bworld.b.qmessage.pk}/")
    assert resp.status == 404
    # Acting by forging a POST with a valid CSRF token from this session: 404 and nothing changes.
    page.goto(base + "/messages/quarantine/")
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    r = page.request.post(base + f"/messages/quarantine/{bworld.b.qmessage.pk}/action/",
                          form={"action": "delete", "csrfmiddlewaretoken": token},
                          headers={"Referer": base + "/messages/quarantine/"})
    assert r.status == 404
    assert QuarantineRecipient.objects.get(message=bworld.b.qmessage).status == "held"


def test_it_flags_a_sieve_error_at_the_right_line(page: Any, live_server: Any, bworld: World) -> None:
    base = live_server.url
    login(page, base, "dadmin_a")
    page.goto(base + "/security/scripts/new/")
    editor = page.locator("textarea[name=source]")
    editor.fill("")
    editor.type('require ["fileinto"];\nif header :contains "subject" "x" {\n  keep;\n}}\nkeep;\n', delay=0)
    problem = page.locator("#sieve-problems li.problem").first
    problem.wait_for()
    assert problem.get_attribute("data-line") == "4"
    assert "Line 4" in problem.inner_text()
    problem.click()  # the caret moves to the error's line
    caret_line = page.evaluate("() => { const t = document.querySelector('textarea[name=source]');"
                               " return t.value.slice(0, t.selectionStart).split('\\n').length; }")
    assert caret_line == 4
    editor.fill('if true {\n  keep;\n}\n')
    page.locator("#sieve-problems li.ok").wait_for()
    shot(page, "sieve-editor")


def test_it_renders_dashboard_charts_with_data_that_lead_into_the_log(page: Any, live_server: Any,
                                                                      bworld: World) -> None:
    base = live_server.url
    login(page, base, "root")
    page.goto(base + "/dashboard/")
    assert page.locator(".card.chart").count() == 9
    # the world's quarantined messages (9.5 points, BAYES_SPAM_99) in the anti-spam charts
    assert page.locator("[data-chart=scores] rect.bar").count() == 1
    assert page.locator("[data-chart=scores] text.axis").count() == 14
    symbol = page.locator("[data-chart=symbols] .hbar")
    assert symbol.count() == 1 and "BAYES_SPAM_99" in symbol.first.inner_text()
    bars = page.locator("[data-chart=goodjunk] rect.bar")
    assert bars.count() >= 1
    box = bars.first.bounding_box()
    assert box is not None and box["height"] > 0 and box["width"] > 0
    assert page.locator("[data-chart=recipients] .hbar").count() == 2
    shot(page, "dashboard-laptop")
    bars.first.click()
    page.wait_for_url("**/logging/log/?*")
    assert page.locator("#log-table tbody tr[data-log-id]").count() >= 1
    shot(page, "log-laptop")
    page.goto(base + "/dashboard/")
    page.locator("[data-chart=symbols] .hbar").first.click()
    page.wait_for_url("**/logging/log/?*symbol=BAYES_SPAM_99*")
    assert page.locator("#log-table tbody tr[data-log-id]").count() == 2
    assert page.locator("#f-sym").input_value() == "BAYES_SPAM_99"
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/dashboard/")
    shot(page, "dashboard-phone")
    page.goto(base + f"/messages/quarantine/{bworld.a.qmessage.pk}/")
    shot(page, "quarantine-detail-phone")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(base + f"/messages/quarantine/{bworld.a.qmessage.pk}/")
    shot(page, "quarantine-detail-laptop")
    page.goto(base + "/security/lists/")
    shot(page, "lists-laptop")
    page.goto(base + "/setup/")
    shot(page, "setup-laptop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/messages/quarantine/")
    shot(page, "quarantine-list-phone")
    page.goto(base + "/logging/log/")
    shot(page, "log-phone")
