"""Every page and API endpoint x every role x own/other tenant: allowed (2xx/3xx) or 404,
never a 500, and never another tenant's data in the body."""

from __future__ import annotations

from typing import Any

import pytest

from tests.django.conftest import ROLES, World

G, D, Q, U = "global_admin", "domain_admin", "quarantine_admin", "user"
ALL = {G, D, Q, U}
ADMINS = {G, D, Q}
SETTINGS = {G, D}

# (url, roles allowed). Pages without a tenant object.
PAGES: list[tuple[str, set[str]]] = [
    ("/", ALL), ("/dashboard/", ADMINS), ("/setup/", SETTINGS), ("/setup/domains/", SETTINGS),
    ("/setup/domains/new/", {G}), ("/setup/users/", SETTINGS), ("/setup/users/new/", SETTINGS),
    ("/setup/users/import/", SETTINGS), ("/setup/users/export.csv", SETTINGS), ("/setup/options/", SETTINGS),
    ("/setup/settings/", {G}), ("/security/", SETTINGS), ("/security/lists/", SETTINGS), ("/security/dkim/", SETTINGS),
    ("/security/scripts/", SETTINGS), ("/security/scripts/new/", SETTINGS),
    ("/security/scripts/order/", SETTINGS), ("/security/layers/", SETTINGS),
    ("/security/layers/lists/", SETTINGS), ("/messages/", ADMINS), ("/messages/queue/", {G}), ("/messages/quarantine/", ALL),
    ("/messages/quarantine/?queue=admin", {G}), ("/logging/", ADMINS), ("/logging/log/", ALL),
    ("/logging/log/export.csv", ALL), ("/reports/", ADMINS), ("/account/", {U}), ("/account/lists/", {U}),
    ("/account/settings/", {U}), ("/account/token/", ALL), ("/account/2fa/", ALL),
    ("/api/domains/", SETTINGS), ("/api/users/", SETTINGS), ("/api/lists/", SETTINGS),
    ("/api/user-lists/", {G, D, U}), ("/api/scripts/", SETTINGS),
    ("/api/quarantine/", ALL), ("/api/messages/", ALL), ("/api/layers/", SETTINGS), ("/api/layers/lists/", {G}),
    ("/api/dashboard/", ALL), ("/api/me/", ALL), ("/api/schema/", ALL),
    ("/api/verification-sources/", SETTINGS), ("/api/user-options/", {G}), ("/api/user-options/?domain=a.example", SETTINGS),
    ("/api/user-options/?domain=b.example", {G}), ("/api/settings/", {G}), ("/api/users/csv/", SETTINGS),
    ("/api/policy-order/", {G}), ("/api/policy-order/?domain=a.example", SETTINGS),
    ("/security/antispam/", SETTINGS), ("/security/antispam/greylist/clear/", {G}),
    ("/security/antispam/train/", SETTINGS),
    ("/api/antispam/bayes/", SETTINGS), ("/api/antispam/greylist/", {G}),
]

# (url template, object kind, roles allowed on their OWN tenant's object). On the other
# tenant's object only the global administrator is allowed.
OBJECT_PAGES: list[tuple[str, str, set[str]]] = [
    ("/setup/domains/{}/", "domain", SETTINGS),
    ("/setup/users/{}/", "user_account", SETTINGS),
    ("/security/scripts/{}/", "script", SETTINGS),
    ("/messages/quarantine/{}/", "qmessage", ALL),
    ("/messages/quarantine/{}/preview/", "qmessage", ALL),
    ("/messages/quarantine/{}/source/", "qmessage", ALL),
    ("/logging/log/{}/", "message", ALL),
    ("/security/layers/lists/?domain={}", "domain", SETTINGS),
    ("/api/domains/{}/", "domain", SETTINGS),
    ("/api/users/{}/", "user_account", SETTINGS),
    ("/api/scripts/{}/", "script", SETTINGS),
    ("/api/lists/{}/", "list_entry", SETTINGS),
    ("/api/user-lists/{}/", "user_list_entry", {G, D, U}),
    ("/api/quarantine/{}/", "qmessage", ALL),
    ("/api/messages/{}/", "message", ALL),
]


def _obj(world: World, tenant: str, kind: str) -> Any:
    t = getattr(world, tenant)
    return {"domain": t.domain, "user_account": t.accounts["user"], "script": t.script, "qmessage": t.qmessage,
            "message": t.message, "list_entry": t.list_entry, "user_list_entry": t.user_list_entry}[kind]


def _allowed(code: int) -> bool:
    return 200 <= code < 400


@pytest.mark.parametrize("role", ROLES)
def test_it_allows_or_hides_every_page_by_role(world: World, role: str) -> None:
    c = world.client(role)
    other = world.b.marker
    problems = []
    for url, allowed in PAGES:
        r = c.get(url)
        body = b"".join(r.streaming_content) if r.streaming else r.content
        if r.status_code >= 500:
            problems.append(f"{url}: {r.status_code}")
        elif role in allowed and not _allowed(r.status_code):
            problems.append(f"{url}: expected allowed, got {r.status_code}")
        elif role not in allowed and r.status_code != 404:
            problems.append(f"{url}: expected 404, got {r.status_code}")
        if role != G and other.encode() in body:
            problems.append(f"{url}: leaks the other tenant's data")
    assert not problems, problems


@pytest.mark.parametrize("role", ROLES)
def test_it_hides_other_tenants_objects(world: World, role: str) -> None:
    c = world.client(role)
    problems = []
    for tmpl, kind, allowed in OBJECT_PAGES:
        for tenant in ("a", "b"):
            obj = _obj(world, tenant, kind)
            url = tmpl.format(obj.pk)
            r = c.get(url)
            ok = role == G or (tenant == "a" and role in allowed)
            if r.status_code >= 500:
                problems.append(f"{url} ({tenant}): {r.status_code}")
            elif ok and not _allowed(r.status_code):
                problems.append(f"{url} ({tenant}): expected allowed, got {r.status_code}")
            elif not ok and r.status_code != 404:
                problems.append(f"{url} ({tenant}): expected 404, got {r.status_code}")
            if role != G and world.b.marker.encode() in r.content:
                problems.append(f"{url} ({tenant}): leaks the other tenant's data")
    assert not problems, problems


def test_it_hides_every_page_from_anonymous_visitors(world: World) -> None:
    from django.test import Client

    c = Client()
    for url, _ in PAGES:
        r = c.get(url)
        assert r.status_code in (302, 401, 403), (url, r.status_code)
        if r.status_code == 302:
            assert r["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", [D, Q, U])
def test_it_refuses_actions_on_other_tenants_messages(world: World, role: str, smtp_sink: list[Any]) -> None:
    from quarantine.models import QuarantineRecipient

    c = world.client(role)
    q = world.b.qmessage
    for action in ("release", "delete", "spam"):
        assert c.post(f"/messages/quarantine/{q.pk}/action/", {"action": action}).status_code == 404
        assert c.post(f"/api/quarantine/{q.pk}/act/", {"action": action}, content_type="application/json"
                      ).status_code == 404
    r = c.post("/messages/quarantine/bulk/", {"action": "release", "ids": [q.pk]})
    assert r.status_code == 302
    r = c.post("/api/quarantine/bulk/", {"action": "delete", "ids": [q.pk]}, content_type="application/json")
    assert r.status_code in (200, 404)
    assert set(QuarantineRecipient.objects.filter(message=q).values_list("status", flat=True)) == {"held"}
    assert smtp_sink == []
    assert c.post(f"/logging/log/{world.b.message.pk}/action/", {"action": "block"}).status_code == 404


def test_it_lets_a_domain_admin_act_on_own_domain_only(world: World, smtp_sink: list[Any]) -> None:
    from quarantine.models import QuarantineRecipient

    c = world.client(D)
    r = c.post(f"/messages/quarantine/{world.a.qmessage.pk}/action/", {"action": "release"})
    assert r.status_code == 302
    assert QuarantineRecipient.objects.get(message=world.a.qmessage).status == "released"
    assert [e.rcpt_tos for e in smtp_sink] == [["user@a.example"]]
    # Release works once.
    c.post(f"/messages/quarantine/{world.a.qmessage.pk}/action/", {"action": "release"})
    assert len(smtp_sink) == 1


def test_it_hides_other_tenants_recipients_inside_a_shared_message(world: World) -> None:
    """One message to both tenants: each domain admin sees it, but never the other tenant's
    recipient, not even in the transcript, trace or symbols."""
    from reports.models import MessageLog, MessageRecipient

    m = MessageLog.objects.create(
        log_id="shared00000000000000000000000001", time=world.a.message.time, direction="inbound",
        mail_from="news@sender.test", subject="shared", action="accept",
        transcript=["MAIL FROM:<news@sender.test>", "RCPT TO:<user@a.example>", "RCPT TO:<user@b.example>"],
        trace=[{"source": "lists", "event": "checked", "detail": "user@b.example not listed", "ms": 0.1}],
        symbols=[{"name": "X", "score": 0.0, "detail": "rcpt user@b.example", "layer": "lists"}])
    for t in ("a", "b"):
        MessageRecipient.objects.create(message=m, address=f"user@{t}.example", domain=f"{t}.example",
                                        action="accept")
    for role in ("domain_admin", "quarantine_admin", "user"):
        c = world.client(role)
        page = c.get(f"/logging/log/{m.pk}/")
        api = c.get(f"/api/messages/{m.pk}/")
        listing = c.get("/logging/log/?subject=shared")
        export = b"".join(c.get("/logging/log/export.csv?subject=shared").streaming_content)
        for body in (page.content, api.content, listing.content, export):
            assert b"user@a.example" in body, role
            assert b"user@b.example" not in body, role
    page = world.client("global_admin").get(f"/logging/log/{m.pk}/")
    assert b"user@b.example" in page.content
