"""Security → Anti-spam state, page and API (docs/ui.md, "Anti-spam state"): each role sees and
forgets only the Bayes scopes it administers (a domain administrator never global nor another
tenant's; quarantine administrators and users nothing, 404), a wipe really forgets, the
greylisting state is counted and cleared by global administrators only, bad input answers 400,
store-derived names are escaped, and the page's POSTs need their CSRF token."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from gateway_milter.antispam.bayes import BayesClassifier, learn_item
from gateway_milter.layers.greylist import NETWORK_STEP_KEY, GreylistSettings, decide
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World

SCOPES = ("global", "dom:a.example", "dom:b.example", "user:user@a.example", "user:user@b.example")
HOSTILE_SCOPE = "user:<img src=x onerror=alert(1)>@a.example"


def _message(i: int, spam: bool) -> bytes:
    words = ("cheap pills winner prize casino" if spam else "meeting agenda minutes budget review")
    return (f"From: sender{i}@sender.test\r\nTo: user@a.example\r\nSubject: note {i}\r\n"
            f"Message-ID: <{i}.{int(spam)}@sender.test>\r\n\r\n{words} number {i}\r\n").encode()


def _learn(store: MemoryStore, scopes: tuple[str, ...] = SCOPES, spam: int = 2, ham: int = 1) -> None:
    from webadmin.antispam_tasks import view_of_bytes

    items = [learn_item(view_of_bytes(_message(i, True)), True, scopes) for i in range(spam)]
    items += [learn_item(view_of_bytes(_message(i, False)), False, scopes) for i in range(ham)]
    BayesClassifier(store).learn_many(items)


def _counts(store: MemoryStore, scope: str) -> tuple[int, int]:
    st = BayesClassifier(store).stats(scope)
    return st["spam_learned"], st["ham_learned"]


def _api_scopes(c: Client) -> dict[str, dict[str, Any]]:
    r = c.get("/api/antispam/bayes/")
    assert r.status_code == 200, r.content
    return {s["scope"]: s for s in r.json()["scopes"]}


# -- who sees which scope --------------------------------------------------------------------------
def test_it_lists_every_learned_scope_to_a_global_admin(world: World, store: MemoryStore) -> None:
    from webadmin.services import do_set_layer_settings

    _learn(store)
    do_set_layer_settings("bayes", {"min_learned": 1})
    do_set_layer_settings("bayes", {"min_learned": 2}, world.a.domain)
    c = world.client("global_admin")
    rows = _api_scopes(c)
    assert list(rows) == list(SCOPES)
    g, a = rows["global"], rows["dom:a.example"]
    assert (g["spam_learned"], g["ham_learned"], g["model_spam_steps"], g["model_ham_steps"]) == (2, 1, 2, 1)
    assert g["tokens"] > 0 and g["min_learned"] == 1 and g["in_use"] and g["note"] == ""
    # a.example's own min_learned (2 of each class) is not reached: 1 ham
    assert (a["min_learned"], a["in_use"], a["note"]) == (2, False, "needs 2 of each class")
    assert rows["user:user@b.example"]["note"] == "per-user scopes are off"
    page = c.get("/security/antispam/")
    assert page.status_code == 200
    for scope in SCOPES:
        assert f'data-scope="{scope}"'.encode() in page.content
    assert b"Greylisting" in page.content


def test_it_shows_a_domain_admin_only_their_domains_scopes(world: World, store: MemoryStore) -> None:
    _learn(store)
    c = world.client("domain_admin", "a")
    assert list(_api_scopes(c)) == ["dom:a.example", "user:user@a.example"]
    page = c.get("/security/antispam/").content
    assert b"dom:a.example" in page and b"user:user@a.example" in page
    assert b"b.example" not in page and b'data-scope="global"' not in page
    assert b"Greylisting" not in page


@pytest.mark.parametrize("role", ["quarantine_admin", "user"])
def test_it_refuses_everything_to_quarantine_admins_and_users(world: World, store: MemoryStore, role: str) -> None:
    _learn(store)
    c = world.client(role, "a")
    assert c.get("/security/antispam/").status_code == 404
    assert c.get("/security/antispam/bayes/wipe/?scope=dom:a.example").status_code == 404
    assert c.post("/security/antispam/bayes/wipe/", {"scope": "dom:a.example"}).status_code == 404
    assert c.get("/api/antispam/bayes/").status_code == 404
    assert c.post("/api/antispam/bayes/wipe/", {"scope": "dom:a.example"},
                  content_type="application/json").status_code == 404
    assert _counts(store, "dom:a.example") == (2, 1)


@pytest.mark.parametrize("scope", ["global", "dom:b.example", "user:user@b.example"])
def test_it_refuses_a_domain_admin_wiping_global_or_another_tenants_scope(world: World, store: MemoryStore,
                                                                          scope: str) -> None:
    _learn(store)
    c = world.client("domain_admin", "a")
    assert c.get(f"/security/antispam/bayes/wipe/?scope={scope}").status_code == 404
    assert c.post("/security/antispam/bayes/wipe/", {"scope": scope}).status_code == 404
    r = c.post("/api/antispam/bayes/wipe/", {"scope": scope}, content_type="application/json")
    assert r.status_code == 404
    assert _counts(store, scope) == (2, 1)


# -- wiping ----------------------------------------------------------------------------------------
def test_it_wipes_a_domain_admins_scope_after_confirmation_and_records_it(world: World, store: MemoryStore,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    _learn(store)
    c = world.client("domain_admin", "a")
    confirm = c.get("/security/antispam/bayes/wipe/?scope=dom:a.example")
    assert confirm.status_code == 200 and b"Forget what this scope learned" in confirm.content
    assert _counts(store, "dom:a.example") == (2, 1)  # the GET asks, it does not wipe
    with caplog.at_level(logging.INFO, logger="bulwark.antispam"):
        r = c.post("/security/antispam/bayes/wipe/", {"scope": "dom:a.example"}, follow=True)
    assert "Scope dom:a.example: everything it learned is forgotten." in [str(m) for m in r.context["messages"]]
    assert BayesClassifier(store).stats("dom:a.example") == {
        "spam_learned": 0, "ham_learned": 0, "fields": 0, "token_model_spam": 0, "token_model_ham": 0,
        "token_weights": 0}
    assert "dadmin_a wiped Bayes scope dom:a.example (3 keys)" in caplog.text
    assert _counts(store, "user:user@a.example") == (2, 1) and _counts(store, "global") == (2, 1)
    assert "dom:a.example" not in _api_scopes(c)


def test_it_wipes_through_the_api(world: World, store: MemoryStore) -> None:
    _learn(store)
    c = world.client("domain_admin", "a")
    r = c.post("/api/antispam/bayes/wipe/", {"scope": "user:user@a.example"}, content_type="application/json")
    assert r.status_code == 200 and r.json() == {"scope": "user:user@a.example", "wiped": True}
    assert _counts(store, "user:user@a.example") == (0, 0)
    r = c.post("/api/antispam/bayes/wipe/", {"scope": "user:user@a.example"}, content_type="application/json")
    assert r.json()["wiped"] is False
    r = world.client("global_admin").post("/api/antispam/bayes/wipe/", {"scope": "global"},
                                          content_type="application/json")
    assert r.status_code == 200 and _counts(store, "global") == (0, 0)
    assert _counts(store, "dom:b.example") == (2, 1)


@pytest.mark.parametrize(("url", "body", "field"), [
    ("/api/antispam/bayes/wipe/", {}, "scope"),
    ("/api/antispam/bayes/wipe/", {"scope": 5}, "scope"),
    ("/api/antispam/bayes/wipe/", {"scope": "everything"}, "scope"),
    ("/api/antispam/bayes/wipe/", {"scope": "dom:a example"}, "scope"),
    ("/api/antispam/greylist/clear/", {}, "detail"),
    ("/api/antispam/greylist/clear/", {"network": "10.0.0.0/8", "all": True}, "detail"),
    ("/api/antispam/greylist/clear/", {"all": "yes"}, "all"),
    ("/api/antispam/greylist/clear/", {"network": "not-a-network"}, "network"),
])
def test_it_answers_400_for_bad_input(world: World, store: MemoryStore, url: str, body: dict[str, Any],
                                      field: str) -> None:
    r = world.client("global_admin").post(url, body, content_type="application/json")
    assert r.status_code == 400, r.content
    assert r.json()[field][0]


# -- greylisting -----------------------------------------------------------------------------------
def _greylist(store: MemoryStore) -> None:
    """Two pending triplets, three passed ones from two networks."""
    s = GreylistSettings(mode="on")
    for net, sender in (("198.51.100.0/24", "a@x.test"), ("198.51.100.0/24", "b@x.test"), ("2001:db8::/64", "c@y.test")):
        # (a network's passes count at most once an hour: its hour marker gone, as an hour later)
        store.delete(NETWORK_STEP_KEY + net)
        decide(store, net, sender, "user@a.example", s, now=1000.0)
        assert decide(store, net, sender, "user@a.example", s, now=1000.0 + s.delay).state == "passed"
    for sender in ("d@z.test", "e@z.test"):
        decide(store, "203.0.113.0/24", sender, "user@a.example", s, now=1000.0)


def test_it_counts_greylisting_and_removes_one_network(world: World, store: MemoryStore) -> None:
    _greylist(store)
    c = world.client("global_admin")
    g = c.get("/api/antispam/greylist/").json()
    assert g["pending"] == {"count": 2, "at_least": False} and g["passed"] == {"count": 3, "at_least": False}
    assert [(n["network"], n["passes"], n["auto_pass"]) for n in g["networks"]] == [
        ("198.51.100.0/24", 2, False), ("2001:db8::/64", 1, False)]
    assert 0 < g["networks"][0]["ttl"] <= GreylistSettings().expiry and g["auto_pass_after"] == 5
    page = c.get("/security/antispam/").content
    assert b'data-network="198.51.100.0/24"' in page and b"days" in page
    r = c.post("/security/antispam/greylist/network/", {"network": "198.51.100.7/24"}, follow=True)
    assert "Network 198.51.100.0/24 removed: its clients are greylisted again." in [str(m) for m in r.context["messages"]]
    assert store.get("grey:n:198.51.100.0/24") is None and store.get(NETWORK_STEP_KEY + "198.51.100.0/24") is None
    g = c.get("/api/antispam/greylist/").json()
    assert [n["network"] for n in g["networks"]] == ["2001:db8::/64"] and g["passed"]["count"] == 3
    # the API: a network without an entry is 404, one with an entry goes
    r = c.post("/api/antispam/greylist/clear/", {"network": "198.51.100.0/24"}, content_type="application/json")
    assert r.status_code == 404
    r = c.post("/api/antispam/greylist/clear/", {"network": "2001:db8::1/64"}, content_type="application/json")
    assert r.status_code == 200 and store.get("grey:n:2001:db8::/64") is None


def test_it_clears_all_greylisting_state_after_confirmation(world: World, store: MemoryStore) -> None:
    _greylist(store)
    _learn(store, ("global",))
    c = world.client("global_admin")
    assert b"Clear all greylisting state" in c.get("/security/antispam/greylist/clear/").content
    assert len(store.scan_keys("grey:")) == 9  # the GET only asks (7 entries, 2 networks' hour markers)
    r = c.post("/security/antispam/greylist/clear/", follow=True)
    assert "Greylisting state cleared (7 entries)." in [str(m) for m in r.context["messages"]]
    assert store.scan_keys("grey:") == [] and _counts(store, "global") == (2, 1)
    _greylist(store)
    r = c.post("/api/antispam/greylist/clear/", {"all": True}, content_type="application/json")
    assert r.json() == {"deleted": 7} and store.scan_keys("grey:") == []


@pytest.mark.parametrize("role", ["domain_admin", "quarantine_admin", "user"])
def test_it_keeps_greylisting_to_global_admins(world: World, store: MemoryStore, role: str) -> None:
    _greylist(store)
    c = world.client(role, "a")
    assert c.get("/api/antispam/greylist/").status_code == 404
    assert c.post("/api/antispam/greylist/clear/", {"all": True}, content_type="application/json").status_code == 404
    assert c.get("/security/antispam/greylist/clear/").status_code == 404
    assert c.post("/security/antispam/greylist/clear/").status_code == 404
    assert c.post("/security/antispam/greylist/network/", {"network": "198.51.100.0/24"}).status_code == 404
    assert len(store.scan_keys("grey:")) == 9


# -- limits, escaping, CSRF ------------------------------------------------------------------------
def test_it_says_at_least_and_capped_when_a_listing_stops_at_its_limit(world: World, store: MemoryStore,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from webadmin import antispam_state

    _greylist(store)
    _learn(store, ("user:user@a.example", "user:other@a.example", "user:third@a.example"), spam=1, ham=0)
    monkeypatch.setattr(antispam_state, "GREY_COUNT_LIMIT", 2)
    monkeypatch.setattr(antispam_state, "USER_SCOPE_LIMIT", 2)
    c = world.client("global_admin")
    g = c.get("/api/antispam/greylist/").json()
    assert g["passed"] == {"count": 2, "at_least": True}
    b = c.get("/api/antispam/bayes/").json()
    assert len(b["scopes"]) == 2 and b["user_scopes_capped"] is True
    page = c.get("/security/antispam/").content.decode()
    assert "at least 2" in page and "Only the first 2 user scopes are listed" in page


def test_it_escapes_scope_names_from_the_store_and_can_wipe_them(world: World, store: MemoryStore) -> None:
    _learn(store, (HOSTILE_SCOPE,), spam=1, ham=0)
    store.set("grey:n:<script>alert(1)</script>", "3")
    c = world.client("global_admin")
    page = c.get("/security/antispam/").content
    assert b"<img src=x" not in page and b"<script>alert(1)" not in page
    assert b"&lt;img src=x onerror=alert(1)&gt;@a.example" in page
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page
    confirm = c.get("/security/antispam/bayes/wipe/", {"scope": HOSTILE_SCOPE})
    assert confirm.status_code == 200 and b"<img src=x" not in confirm.content
    c.post("/security/antispam/bayes/wipe/", {"scope": HOSTILE_SCOPE})
    assert _counts(store, HOSTILE_SCOPE) == (0, 0)


def test_it_enforces_csrf_on_the_page_posts(world: World, store: MemoryStore) -> None:
    _learn(store)
    _greylist(store)
    c = Client(enforce_csrf_checks=True)
    c.force_login(world.root.user)
    s = c.session
    s["bulwark_2fa"] = True
    s.save()
    assert c.post("/security/antispam/bayes/wipe/", {"scope": "global"}).status_code == 403
    assert c.post("/security/antispam/greylist/clear/").status_code == 403
    assert c.post("/security/antispam/greylist/network/", {"network": "198.51.100.0/24"}).status_code == 403
    assert _counts(store, "global") == (2, 1) and len(store.scan_keys("grey:")) == 9
    c.get("/security/antispam/bayes/wipe/", {"scope": "global"})  # the form sets the CSRF cookie
    token = c.cookies["csrftoken"].value
    r = c.post("/security/antispam/bayes/wipe/", {"scope": "global", "csrfmiddlewaretoken": token})
    assert r.status_code == 302 and _counts(store, "global") == (0, 0)


def test_it_says_whether_greylisting_is_on_globally_and_per_domain(world: World, store: MemoryStore) -> None:
    from webadmin.services import do_set_layer_settings

    c = world.client("global_admin")
    g = c.get("/api/antispam/greylist/").json()
    assert (g["mode"], g["domain_modes"]) == ("off", [])  # off until an administrator turns it on
    assert b"<strong>off</strong>" in c.get("/security/antispam/").content
    do_set_layer_settings("greylist", {"mode": "on"})
    do_set_layer_settings("greylist", {"mode": "score"}, world.b.domain)
    g = c.get("/api/antispam/greylist/").json()
    assert (g["mode"], g["domain_modes"]) == ("on", [[world.b.domain.name, "score"]])
    page = c.get("/security/antispam/").content.decode()
    mode = page[page.index('id="greylist-mode"'):page.index("</td>", page.index('id="greylist-mode"'))]
    assert "<strong>on</strong>" in mode and f"<li>{world.b.domain.name}: <strong>score only</strong>" in mode
    assert world.a.domain.name not in mode  # (a domain that follows the global mode is not listed)
