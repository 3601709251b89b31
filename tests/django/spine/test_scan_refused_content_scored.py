"""``manage.py scan`` of a message every recipient of which is refused at RCPT (a corpus's own
addresses on a gateway that does not serve their domains: relay denied) printed
"reject score=0.00" for every message, spam or ham, so a corpus could not be scored offline
without a local recipient given for each. Its content is now scored as if it had been accepted,
and the line says so; the action stays the refusal."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from gateway_milter.layers.scoring import GTUBE_TEXT
from tests.django.spine.test_scan_side_effects import IP, learned, publish  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def _eml(tmp_path: Path, rcpt: str, body: str) -> Path:
    eml = tmp_path / f"{len(list(tmp_path.iterdir()))}.eml"
    eml.write_bytes(f"From: a@x.test\r\nTo: {rcpt}\r\nSubject: s\r\n\r\n{body}\r\n".encode())
    return eml


def _rows(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("scan", "--json", "--ip", IP, *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_relay_denied_message_gets_its_content_score(tmp_path: Path, learned: list[Any]) -> None:  # noqa: F811
    publish(tmp_path)
    spam = _eml(tmp_path, "someone@elsewhere.test", GTUBE_TEXT)
    ham = _eml(tmp_path, "someone@elsewhere.test", "lunch at noon?")
    local = _eml(tmp_path, "u@example.com", GTUBE_TEXT)
    rows = {Path(r["file"]).name: r for r in _rows(str(spam), str(ham), str(local))}
    s, h, loc = rows[spam.name], rows[ham.name], rows[local.name]
    assert s["action"] == "reject" and "Relay access denied" in s["reason"], s
    assert s["score"] >= 1000 and s["content_scored_after_refusal"] is True
    assert "GTUBE" in {x["name"] for x in s["symbols"]}
    assert h["action"] == "reject" and h["score"] < 5 and h["content_scored_after_refusal"] is True
    # an accepted message is scored as before and carries no such mark
    assert loc["action"] in ("quarantine", "reject") and loc["score"] >= 1000
    assert "content_scored_after_refusal" not in loc
    assert learned == []  # scan mode: nothing learned from what was scored after the refusal


def test_the_text_line_says_the_score_is_the_contents(tmp_path: Path) -> None:
    publish(tmp_path)
    out = io.StringIO()
    call_command("scan", "--ip", IP, str(_eml(tmp_path, "someone@elsewhere.test", GTUBE_TEXT)), stdout=out)
    first = out.getvalue().splitlines()[0]
    assert ": reject score=1" in first and "the score is the content's, as if accepted" in first, first


def test_a_layer_that_fails_is_that_messages_answer_not_the_end_of_the_scan(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer failing with tempfail while a refused message's content is scored (a hostile
    message past the stage's time budget) ended the scan with a traceback: no verdict for it
    nor for any message after it."""
    from gateway_milter.pipeline import runner

    publish(tmp_path)
    monkeypatch.setattr(runner, "FAULT_INJECT", frozenset({"scoring"}))
    refused = _eml(tmp_path, "someone@elsewhere.test", "lunch at noon?")
    after = _eml(tmp_path, "u@example.com", "lunch at noon?")
    rows = {Path(r["file"]).name: r for r in _rows(str(refused), str(after))}
    r = rows[refused.name]
    assert r["action"] == "reject" and "Relay access denied" in r["reason"], r
    assert "layer scoring failed" in r["content_scoring_failed"] and "content_scored_after_refusal" not in r
    assert rows[after.name]["action"] == "tempfail"  # (the accepted one: as the milter answers it)
