"""The anti-spam charts of the dashboard and reports (reports/charts.py: inbound scores by point,
top symbols in junk) and the message log's symbol filter they link to (reports/search.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from gateway_milter.adapters import django_store
from gateway_milter.adapters.django_store import write_log_batch
from reports.models import MessageLog, MessageRecipient
from tests.django.conftest import World

# (score, action, symbols): the world's two quarantined messages (9.5, BAYES_SPAM_99) come on top
ROWS: list[tuple[float, str, list[tuple[str, float]]]] = [
    (-2.5, "accept", [("BAYES_00", -1.9)]),
    (0.0, "reject", [("RBL_REFUSED", 0.0)]),  # refused before the content checks: no score
    (0.4, "accept", [("SPF_PASS", 0.0), ("BAYES_05", 0.4)]),
    (4.999, "accept", [("HTML_MESSAGE", 0.1), ("BAYES_50", 4.899)]),
    (5.0, "quarantine", [("BAYES_99", 3.5), ("URIBL_BLACK", 1.5), ("SPAM_SCORE_QUARANTINE", 0.0)]),
    (13.2, "reject", [("BAYES_99", 3.5), ("URIBL_BLACK", 9.7)]),
    (30.0, "reject", [("BAYES_99", 3.5), ("GTUBE", 26.5)]),
]


def _records(domain: str, start: int) -> list[dict[str, Any]]:
    now = timezone.now().timestamp()
    return [{"log_id": f"chart{domain[0]}{start + i:026d}", "time": now - 60 * (i + 1), "direction": "inbound",
             "mail_from": "s@sender.test", "score": score, "action": action,
             "symbols": [{"name": n, "score": p, "detail": "", "layer": "x"} for n, p in syms],
             "recipients": [{"address": f"user@{domain}", "domain": domain, "action": action}]}
            for i, (score, action, syms) in enumerate(ROWS)]


@pytest.fixture(autouse=True)
def _keep_the_test_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    # the batch writer drops stale connections first: here that would be the test's own, inside
    # its transaction (PostgreSQL)
    monkeypatch.setattr(django_store, "close_old_connections", lambda: None)


def _log(world: World) -> None:
    # through the milter's batch writer (compact JSON), one row through the ORM (JSON with spaces)
    write_log_batch(_records(world.a.domain.name, 0))
    m = MessageLog.objects.create(log_id="chartorm", time=timezone.now() - dt.timedelta(minutes=3),
                                  direction="inbound", score=7.25, action="quarantine",
                                  symbols=[{"name": "URIBL_BLACK", "score": 7.25, "detail": "", "layer": "uribl"}])
    MessageRecipient.objects.create(message=m, address=f"user@{world.a.domain.name}", domain=world.a.domain.name,
                                    action="quarantine")
    # another tenant's junk: never in a's charts
    write_log_batch([{**r, "symbols": [{"name": "B_ONLY", "score": 50.0}]} for r in _records(world.b.domain.name, 100)])


def _chart(charts: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return next(c for c in charts if c["key"] == key)


def test_the_score_chart_counts_inbound_messages_by_point(world: World) -> None:
    _log(world)
    charts = world.client("domain_admin", "a").get("/api/dashboard/").json()["charts"]
    c = _chart(charts, "scores")
    assert c["labels"] == ["<0", *(str(i) for i in range(12)), "12+"]
    under, over = ({s["name"]: s for s in c["series"]}[k] for k in ("under 5", "5 or more"))
    totals = [a + b for a, b in zip(under["values"], over["values"], strict=True)]
    # -2.5 | 0.4 | 4.999 | 5.0 | 7.25 | 9.5 (the world's) | 13.2, 30.0; the 0 is left out
    assert totals == [1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 2]
    # the "4" bucket (4.999) is under the quarantine score, the "5" bucket at it
    assert (under["values"][5], over["values"][5], under["values"][6], over["values"][6]) == (1, 0, 0, 1)
    link = parse_qs(urlparse(under["links"][5]).query)
    assert (link["score_min"], link["score_max"], link["direction"]) == (["4.0"], ["4.999"], ["inbound"])
    # the bucket's link finds exactly its messages
    r = world.client("domain_admin", "a").get("/api/messages/", {k: v[0] for k, v in link.items()})
    assert [m["score"] for m in r.json()["results"]] == [4.999]


def test_the_symbols_chart_counts_what_scored_in_junk(world: World) -> None:
    _log(world)
    c = world.client("domain_admin", "a")
    rows = {r["label"]: r for r in _chart(c.get("/api/dashboard/").json()["charts"], "symbols")["rows"]}
    # junk only (quarantine, reject), each message once, symbols of 0 points left out
    assert {k: v["value"] for k, v in rows.items()} == {"URIBL_BLACK": 3, "BAYES_99": 3, "GTUBE": 1,
                                                         "BAYES_SPAM_99": 1}
    assert "B_ONLY" not in rows and "RBL_REFUSED" not in rows and "SPAM_SCORE_QUARANTINE" not in rows
    # each row opens the log filtered to that symbol: compact (batch writer) and spaced (ORM) JSON alike
    q = parse_qs(urlparse(rows["URIBL_BLACK"]["link"]).query)
    assert q["symbol"] == ["URIBL_BLACK"] and q["result"] == ["junk"]
    found = c.get("/api/messages/", {k: v[0] for k, v in q.items()}).json()["results"]
    assert sorted(m["score"] for m in found) == [5.0, 7.25, 13.2]
    page = c.get("/logging/log/", {"symbol": "GTUBE"}).content.decode()
    assert 'name="symbol" value="GTUBE"' in page
    assert '<td class="hide-sm">30.0</td>' in page and '<td class="hide-sm">13.2</td>' not in page


def test_the_good_mail_chart_counts_the_points_added_to_accepted_mail(world: World) -> None:
    _log(world)
    c = world.client("domain_admin", "a")
    chart = _chart(c.get("/api/dashboard/").json()["charts"], "goodsymbols")
    assert chart["title"] == "Points added to good mail"
    rows = {r["label"]: r for r in chart["rows"]}
    # accepted mail only; BAYES_00 (negative) and SPF_PASS (0) add no points
    assert {k: v["value"] for k, v in rows.items()} == {"BAYES_05": 1, "HTML_MESSAGE": 1, "BAYES_50": 1}
    q = parse_qs(urlparse(rows["HTML_MESSAGE"]["link"]).query)
    assert q["symbol"] == ["HTML_MESSAGE"] and q["result"] == ["accept"]
    found = c.get("/api/messages/", {k: v[0] for k, v in q.items()}).json()["results"]
    assert [m["score"] for m in found] == [4.999]


def test_a_global_admin_sees_every_domain_and_a_bad_symbol_is_refused(world: World) -> None:
    _log(world)
    c = world.client("global_admin")
    rows = {r["label"] for r in _chart(c.get("/api/dashboard/").json()["charts"], "symbols")["rows"]}
    assert "B_ONLY" in rows and "URIBL_BLACK" in rows
    assert len(c.get("/api/messages/", {"symbol": "B_ONLY"}).json()["results"]) == 7  # b's seven rows
    for bad in ('X" OR 1', "A%", "<b>", "x" * 101):
        r = c.get("/api/messages/", {"symbol": bad})
        assert r.status_code == 400 and "symbol" in str(r.json()), bad
    # a LIKE wildcard is not one: "_" matches only itself
    assert c.get("/api/messages/", {"symbol": "URIBL_BLAC_"}).json()["results"] == []


def test_the_reports_page_draws_them(world: World) -> None:
    _log(world)
    page = world.client("global_admin").get("/reports/").content.decode()
    assert 'data-chart="scores"' in page and 'data-chart="symbols"' in page
    assert ">12+</text>" in page and "symbol=URIBL_BLACK" in page
