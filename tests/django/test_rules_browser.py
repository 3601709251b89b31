"""Security → Heuristic rules (webadmin/rulesbrowser.py): the published rule set rule by rule,
with the points the scoring layer gives each one, and its hits in junk and in good mail among
the messages the reader may see; search, filters and pages; message data stays escaped."""

from __future__ import annotations

import datetime as dt
import re

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
    page = world.client("global_admin").get("/security/antispam/rules/").content.decode()
    rows = _rows(page)
    assert set(rows) == {"LOCAL_PRIZE", "LOCAL_NEWSLETTER", "LOCAL_BOTH"}  # (no sub-rule unless asked)
    assert rows["LOCAL_PRIZE"] == {"rule": "LOCAL_PRIZE", "points": "6.500", "without_bayes": "6.500",
                                   "junk": "3", "good": "2", "kind": "body", "means": "Mentions a prize"}
    assert (rows["LOCAL_NEWSLETTER"]["junk"], rows["LOCAL_NEWSLETTER"]["good"]) == ("0", "2")
    assert "Says &lt;unsubscribe&gt;" in page  # (escaped)
    assert 'href="/logging/log/?symbol=LOCAL_PRIZE&amp;result=junk"' in page
    assert list(rows) == ["LOCAL_PRIZE", "LOCAL_NEWSLETTER", "LOCAL_BOTH"]  # most hits first, then by name
    assert rows["LOCAL_BOTH"]["kind"] == "meta"
    assert "__LOCAL_SUB" in _rows(world.client("global_admin").get("/security/antispam/rules/?sub=1").content.decode())


def test_search_and_filters(world: World) -> None:
    _policy(world)
    _log(world, "a", "accept", ["LOCAL_NEWSLETTER"])
    c = world.client("global_admin")
    assert set(_rows(c.get("/security/antispam/rules/?q=prize").content.decode())) == {"LOCAL_PRIZE"}
    assert set(_rows(c.get("/security/antispam/rules/?q=UNSUBSCRIBE").content.decode())) == {"LOCAL_NEWSLETTER"}
    assert set(_rows(c.get("/security/antispam/rules/?q=local_b").content.decode())) == {"LOCAL_BOTH"}
    assert set(_rows(c.get("/security/antispam/rules/?only=good").content.decode())) == {"LOCAL_NEWSLETTER"}
    assert set(_rows(c.get("/security/antispam/rules/?only=hits&q=prize").content.decode())) == set()
    page = c.get("/security/antispam/rules/?q=nothing-like-it&page=x&only=junk").content.decode()
    assert "No rule matches." in page


def test_hits_count_only_the_mail_the_reader_may_see(world: World) -> None:
    _policy(world)
    _log(world, "a", "quarantine", ["LOCAL_PRIZE"], 2)
    _log(world, "b", "quarantine", ["LOCAL_PRIZE"], 5)
    assert _rows(world.client("global_admin").get("/security/antispam/rules/").content.decode())["LOCAL_PRIZE"]["junk"] == "7"
    mine = world.client("domain_admin", "a").get("/security/antispam/rules/").content.decode()
    assert _rows(mine)["LOCAL_PRIZE"]["junk"] == "2" and "your own rules" not in mine
    assert world.client("user", "a").get("/security/antispam/rules/").status_code == 404


def test_pages_of_a_long_rule_set(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from webadmin import rulesbrowser

    monkeypatch.setattr(rulesbrowser, "PAGE", 1)
    _policy(world)
    c = world.client("global_admin")
    first = c.get("/security/antispam/rules/").content.decode()
    second = c.get("/security/antispam/rules/?page=2").content.decode()
    assert "page 1 of 3" in first and 'id="next-page"' in first and "page 2 of 3" in second
    third = c.get("/security/antispam/rules/?page=99").content.decode()
    assert "page 3 of 3" in third and 'id="next-page"' not in third
    assert set(_rows(first)) | set(_rows(second)) | set(_rows(third)) == {"LOCAL_PRIZE", "LOCAL_NEWSLETTER", "LOCAL_BOTH"}


def test_the_api_gives_the_same_rows(world: World) -> None:
    _policy(world)
    _log(world, "a", "accept", ["LOCAL_NEWSLETTER"], 2)
    c = world.client("global_admin")
    got = c.get("/api/antispam/rules/?only=good").json()
    from reports.models import MessageLog

    assert (got["total"], got["pages"], got["messages_read"]) == (1, 1, MessageLog.objects.count())
    rule = got["rules"][0]
    assert (rule["name"], rule["points"], rule["good_hits"], rule["junk_hits"], rule["kind"]) == \
        ("LOCAL_NEWSLETTER", 1.5, 2, 0, "body")
    assert c.get("/api/antispam/rules/?only=bad").status_code == 400
    assert c.get("/api/antispam/rules/?page=9").status_code == 400
    assert world.client("user", "a").get("/api/antispam/rules/").status_code in (403, 404)
