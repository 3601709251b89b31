"""The message log's detail page and API show what each symbol added to the total (``points``)
and, where it differs, the symbol's own score; records from before the points (no ``points``
key) show their score as before. The scan command prints the same."""

from __future__ import annotations

from reports.models import MessageLog, MessageRecipient
from tests.django.conftest import World
from webadmin.management.commands.scan import _points


def _message(world: World, symbols: list[dict[str, object]]) -> MessageLog:
    m = MessageLog.objects.create(log_id="points0000000000000000000000001", time=world.a.message.time,
                                  direction="inbound", mail_from="s@sender.test", subject="points", score=5.75,
                                  action="quarantine", symbols=symbols)
    MessageRecipient.objects.create(message=m, address=f"user@{world.a.domain.name}", domain=world.a.domain.name,
                                    action="quarantine")
    return m


def test_the_detail_page_shows_the_points_counted_and_the_own_score(world: World) -> None:
    m = _message(world, [
        {"name": "MSGID_OUTLOOK_INVALID", "score": 3.899, "points": 2.512, "detail": "", "layer": "rules"},
        {"name": "INVALID_DATE", "score": 1.2, "points": 1.2, "detail": "", "layer": "rules"},
        {"name": "OLD_RECORD", "score": 2.038, "detail": "", "layer": "rules"}])
    page = world.client("global_admin").get(f"/logging/log/{m.pk}/").content.decode()
    table = page[page.index('id="symbols"'):]
    row = table[table.index("MSGID_OUTLOOK_INVALID"):]
    row = row[:row.index("</tr>")]
    assert '<span class="points">2.512</span>' in row and "(own 3.899)" in row
    row = table[table.index("INVALID_DATE"):]
    row = row[:row.index("</tr>")]
    assert '<span class="points">1.2</span>' in row and "own" not in row
    row = table[table.index("OLD_RECORD"):]
    row = row[:row.index("</tr>")]
    assert '<span class="points">2.038</span>' in row and "own" not in row
    api = world.client("global_admin").get(f"/api/messages/{m.pk}/").json()
    assert {s["name"]: s.get("points") for s in api["symbols"]} == {
        "MSGID_OUTLOOK_INVALID": 2.512, "INVALID_DATE": 1.2, "OLD_RECORD": None}


def test_the_scan_command_prints_the_points_and_the_own_score_where_it_differs() -> None:
    assert _points({"name": "A", "score": 3.899, "points": 2.512}) == "2.512; own score 3.899"
    assert _points({"name": "A", "score": 1.2, "points": 1.2}) == "1.2"
    assert _points({"name": "A", "score": 1.0}) == "1"


def test_the_charts_count_a_symbol_by_the_points_it_added() -> None:
    from reports.charts import symbol_names

    syms = [{"name": "HEADER_FROM_DIFFERENT_DOMAINS", "score": 1.0, "points": 0.0},  # fitted to 0: added nothing
            {"name": "INVALID_DATE", "score": 1.2, "points": 2.149},
            {"name": "OLD_RECORD", "score": 0.5}]  # a record from before the points: its own score
    assert symbol_names(syms, positive=True) == {"INVALID_DATE", "OLD_RECORD"}
