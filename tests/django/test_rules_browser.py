"""Security → Heuristic rules (webadmin/rulesbrowser.py): the published rule set rule by rule,
with the points the scoring layer gives each one, and its hits in junk and in good mail among
the messages the reader may see; search, filters and pages; message data stays escaped."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
from django.utils import timezone

from tests.django.conftest import World
from tests.django.test_scan_tool import quick_policy


def _log(world: World, tenant: str, action: str, symbols: list[str], n: int = 1) -> None:
    from reports.models import MessageLog, MessageRecipient

    t = getattr(world, tenant)
    for i in range(n):
        m = MessageLog.objects.create(
            log_id=f"rb-{tenant}-{action}-{symbols[0]}-{i}", time=timezone.now() - dt.timedelta(minutes=1),
            direction="inbound", client_ip="192.0.2.1", mail_from="x@sender.test", header_from="x@sender.test",
            subject="s", size=100, score=1.0, action=action, reason="", policy_version=1,
            symbols=[{"name": s, "score": 1.0, "detail": "", "layer": "rules"} for s in symbols])
        MessageRecipient.objects.create(message=m, address=f"user@{t.domain.name}", domain=t.domain.name, action=action)


COLUMNS = ("rule", "points", "without_bayes", "junk", "good", "kind", "means")


def _rows(page: str) -> dict[str, dict[str, str]]:
    out = {}
    for name, cells in re.findall(r'<tr data-rule="([^"]+)">(.*?)</tr>', page, re.S):
        texts = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
        out[name] = dict(zip(COLUMNS, texts, strict=True))
    return out


def _get(c: Any, url: str) -> str:
    """The page once the rule set is built (the first visit starts its build and says so)."""
    for _ in range(600):  # (30 s: a loaded machine)
        r = c.get(url)
        if r.status_code != 503:
            assert r.status_code == 200, r.status_code
            return str(r.content.decode())
        assert 'id="rules-building"' in r.content.decode() and r["Retry-After"] == "3"
        time.sleep(0.05)
    raise AssertionError("the rule set was not built")


def _policy(world: World, extra: str = "") -> None:
    quick_policy(world.data_dir)
    rules = world.data_dir / "rules" / "local.cf"
    rules.write_text(rules.read_text() + "body LOCAL_NEWSLETTER /unsubscribe/i\nscore LOCAL_NEWSLETTER 1.5\n"
                     "describe LOCAL_NEWSLETTER Says <unsubscribe>\nbody __LOCAL_SUB /sub/\n"
                     "meta LOCAL_BOTH __LOCAL_SUB && LOCAL_NEWSLETTER\nscore LOCAL_BOTH 0.2\n" + extra)
    from webadmin.services import do_publish_policy

    do_publish_policy("test")


def test_it_lists_each_rule_with_its_points_and_hits(world: World) -> None:
    _policy(world)
    _log(world, "a", "quarantine", ["LOCAL_PRIZE"], 3)
    _log(world, "a", "accept", ["LOCAL_NEWSLETTER", "LOCAL_PRIZE"], 2)
    page = _get(world.client("global_admin"), "/security/antispam/rules/")
    rows = _rows(page)
    assert set(rows) == {"LOCAL_PRIZE", "LOCAL_NEWSLETTER", "LOCAL_BOTH"}  # (no sub-rule unless asked)
    assert rows["LOCAL_PRIZE"] == {"rule": "LOCAL_PRIZE", "points": "6.500", "without_bayes": "6.500",
                                   "junk": "3", "good": "2", "kind": "body", "means": "Mentions a prize"}
    assert (rows["LOCAL_NEWSLETTER"]["junk"], rows["LOCAL_NEWSLETTER"]["good"]) == ("0", "2")
    assert "Says &lt;unsubscribe&gt;" in page  # (escaped)
    assert 'href="/logging/log/?symbol=LOCAL_PRIZE&amp;result=junk"' in page
    assert list(rows) == ["LOCAL_PRIZE", "LOCAL_NEWSLETTER", "LOCAL_BOTH"]  # most hits first, then by name
    assert rows["LOCAL_BOTH"]["kind"] == "meta"
    assert "__LOCAL_SUB" in _rows(_get(world.client("global_admin"), "/security/antispam/rules/?sub=1"))


def test_search_and_filters(world: World) -> None:
    _policy(world)
    _log(world, "a", "accept", ["LOCAL_NEWSLETTER"])
    c = world.client("global_admin")
    assert set(_rows(_get(c, "/security/antispam/rules/?q=prize"))) == {"LOCAL_PRIZE"}
    assert set(_rows(_get(c, "/security/antispam/rules/?q=UNSUBSCRIBE"))) == {"LOCAL_NEWSLETTER"}
    assert set(_rows(_get(c, "/security/antispam/rules/?q=local_b"))) == {"LOCAL_BOTH"}
    assert set(_rows(_get(c, "/security/antispam/rules/?only=good"))) == {"LOCAL_NEWSLETTER"}
    assert set(_rows(_get(c, "/security/antispam/rules/?only=hits&q=prize"))) == set()
    page = _get(c, "/security/antispam/rules/?q=nothing-like-it&page=x&only=junk")
    assert "No rule matches." in page


def test_hits_count_only_the_mail_the_reader_may_see(world: World) -> None:
    _policy(world)
    _log(world, "a", "quarantine", ["LOCAL_PRIZE"], 2)
    _log(world, "b", "quarantine", ["LOCAL_PRIZE"], 5)
    assert _rows(_get(world.client("global_admin"), "/security/antispam/rules/"))["LOCAL_PRIZE"]["junk"] == "7"
    mine = _get(world.client("domain_admin", "a"), "/security/antispam/rules/")
    assert _rows(mine)["LOCAL_PRIZE"]["junk"] == "2" and "your own rules" not in mine
    assert world.client("user", "a").get("/security/antispam/rules/").status_code == 404


def test_pages_of_a_long_rule_set(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from webadmin import rulesbrowser

    monkeypatch.setattr(rulesbrowser, "PAGE", 1)
    _policy(world)
    c = world.client("global_admin")
    first = _get(c, "/security/antispam/rules/")
    second = _get(c, "/security/antispam/rules/?page=2")
    assert "page 1 of 3" in first and 'id="next-page"' in first and "page 2 of 3" in second
    third = _get(c, "/security/antispam/rules/?page=99")
    assert "page 3 of 3" in third and 'id="next-page"' not in third
    assert set(_rows(first)) | set(_rows(second)) | set(_rows(third)) == {"LOCAL_PRIZE", "LOCAL_NEWSLETTER", "LOCAL_BOTH"}


def test_the_api_gives_the_same_rows(world: World) -> None:
    _policy(world)
    _log(world, "a", "accept", ["LOCAL_NEWSLETTER"], 2)
    c = world.client("global_admin")
    for _ in range(600):  # (the first asks for the rule set's build: 503 with Retry-After until it is there)
        r = c.get("/api/antispam/rules/?only=good")
        if r.status_code != 503:
            break
        assert r["Retry-After"] == "3" and "being built" in r.json()["detail"]
        time.sleep(0.05)
    got = r.json()
    from reports.models import MessageLog

    assert (got["total"], got["pages"], got["messages_read"]) == (1, 1, MessageLog.objects.count())
    rule = got["rules"][0]
    assert (rule["name"], rule["points"], rule["good_hits"], rule["junk_hits"], rule["kind"]) == \
        ("LOCAL_NEWSLETTER", 1.5, 2, 0, "body")
    assert c.get("/api/antispam/rules/?only=bad").status_code == 400
    assert c.get("/api/antispam/rules/?page=9").status_code == 400
    assert world.client("user", "a").get("/api/antispam/rules/").status_code in (403, 404)


def test_with_score_replaces_only_that_rules_score_lines() -> None:
    from webadmin.rulesbrowser import with_score

    text = "body MINE /x/\nscore MINE 2\nscore MINE_TOO 3\n  score MINE 4 4 4 4\nscore OTHER 1 # MINE\n"
    assert with_score(text, "MINE", 0.5) == "body MINE /x/\nscore MINE_TOO 3\nscore OTHER 1 # MINE\nscore MINE 0.5\n"
    assert with_score(text, "MINE", None) == "body MINE /x/\nscore MINE_TOO 3\nscore OTHER 1 # MINE\n"
    assert with_score("", "MINE", -1) == "score MINE -1\n" and with_score("", "MINE", None) == ""
    from webadmin.rulesbrowser import has_score

    assert has_score(text, "MINE") and has_score(text, "OTHER") and not has_score(text, "MIN")
    assert not has_score("body MINE /x/", "MINE")  # (no trailing newline: nothing of ours to take back)


@pytest.mark.parametrize(("typed", "points"), [("0.5", 0.5), (" 1,25 ", 1.25), ("-3", -3.0), ("0", 0.0),
                                               ("nan", None), ("inf", None), ("1e9", None), ("ten", None), ("", None)])
def test_points_are_a_finite_number_in_range(typed: str, points: float | None) -> None:
    from webadmin.rulesbrowser import parse_points

    if points is None:
        with pytest.raises(ValueError):
            parse_points(typed)
    else:
        assert parse_points(typed) == points


def _points_of(c: Any, name: str) -> str:
    for _ in range(200):  # (a changed rule set is built in the background; the old one answers meanwhile)
        got = _rows(_get(c, f"/security/antispam/rules/?q={name}"))[name]["points"]
        if got != "6.500":
            return got
        time.sleep(0.05)
    return got


def test_a_global_admin_changes_a_rules_points_and_takes_the_change_back(world: World) -> None:
    from webadmin.services import current_snapshot

    _policy(world)
    c = world.client("global_admin")
    page = _get(c, "/security/antispam/rules/points/?name=LOCAL_PRIZE")
    assert 'id="points-now">6.500<' in page and 'id="points-reset"' not in page
    r = c.post("/security/antispam/rules/points/", {"name": "LOCAL_PRIZE", "points": "0,5"})
    assert r.status_code == 302 and r["Location"] == "/security/antispam/rules/?q=LOCAL_PRIZE"
    rules = current_snapshot().settings_for("rules", None)
    assert "score LOCAL_PRIZE 0.5\n" in rules.local_rules
    assert rules.rule_dirs and not rules.include_default  # (the other settings kept as they were)
    assert _points_of(c, "LOCAL_PRIZE") == "0.500"
    assert 'id="points-reset"' in _get(c, "/security/antispam/rules/points/?name=LOCAL_PRIZE")
    r = c.post("/security/antispam/rules/points/", {"name": "LOCAL_PRIZE", "reset": "1"})
    assert r.status_code == 302 and "LOCAL_PRIZE" not in current_snapshot().settings_for("rules", None).local_rules
    _get(c, "/security/antispam/rules/points/?name=LOCAL_PRIZE")  # (the changed rule set is built meanwhile)
    for bad in ("200", "nan", "x"):
        r = c.post("/security/antispam/rules/points/", {"name": "LOCAL_PRIZE", "points": bad})
        assert r.status_code == 400 and "points are a number from -100 to 100" in r.content.decode()
    assert c.get("/security/antispam/rules/points/?name=NO_SUCH_RULE").status_code == 404
    assert c.post("/security/antispam/rules/points/", {"name": "X\nbody EVIL /x/", "points": "1"}).status_code == 404
    assert world.client("domain_admin", "a").get("/security/antispam/rules/points/?name=LOCAL_PRIZE").status_code == 404


def test_a_rules_symbol_leads_to_its_points_from_a_scan_and_from_the_log(world: World) -> None:
    from tests.django.test_scan_tool import _message, _scan

    _policy(world)
    page, _doc = _scan(world.client("global_admin"), message=_message("you won a prize"))
    assert 'href="/security/antispam/rules/points/?name=LOCAL_PRIZE"' in page
    page, _doc = _scan(world.client("domain_admin", "a"), message=_message("you won a prize"))
    assert "LOCAL_PRIZE" in page and "/security/antispam/rules/points/" not in page  # (theirs to read only)
    _log(world, "a", "accept", ["LOCAL_NEWSLETTER"])
    from reports.models import MessageLog

    m = MessageLog.objects.get(log_id="rb-a-accept-LOCAL_NEWSLETTER-0")
    detail = world.client("global_admin").get(f"/logging/log/{m.pk}/").content.decode()
    assert 'href="/security/antispam/rules/points/?name=LOCAL_NEWSLETTER"' in detail
    assert "/security/antispam/rules/points/" not in world.client("domain_admin", "a").get(
        f"/logging/log/{m.pk}/").content.decode()


def test_the_first_visit_after_a_start_does_not_wait_for_the_rule_set(world: World) -> None:
    _policy(world, f"body LOCAL_FRESH /fresh-{time.monotonic_ns()}/\n")  # (a rule set no test built)
    c = world.client("global_admin")
    r = c.get("/security/antispam/rules/")
    assert r.status_code == 503 and 'id="rules-building"' in r.content.decode()
    assert 'http-equiv="refresh"' in r.content.decode()
    assert "LOCAL_FRESH" in _rows(_get(c, "/security/antispam/rules/"))  # (built in the background meanwhile)
