"""``X-Bulwark-Result`` on the one copy delivered to every recipient names a recipient's own
symbols (its user's allow or block entry, the recipient allow list) only when that recipient is
the only one: another recipient's ``USER_BLOCKLIST_SENDER`` (that user blocks this sender) was
shown to the recipients the copy was delivered to. The message log keeps every symbol."""

from __future__ import annotations

import copy
import email
import io
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.front.milter import BulwarkMilter
from tests.unit.spine.conftest import BASE_POLICY, make_gateway
from tests.unit.spine.test_milter_front import NO_NR_OPTS, run


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


def _doc() -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["lists"] += [
        {"list": "block", "kind": "sender", "value": "alice@outside.test", "recipient": "carol@example.com"},
        {"list": "allow", "kind": "sender", "value": "alice@outside.test", "recipient": "dave@example.com"},
        {"list": "allow", "kind": "recipient", "value": "postmaster@example.com"},
    ]
    return doc


def _symbols(ctx: TestCtx) -> set[str]:
    value = ctx._msg["X-Bulwark-Result"]
    return set(value.split("symbols=", 1)[1].split(", ")) - {"none"}


def _send(gw: Any, *rcpts: str) -> tuple[TestCtx, list[int], int]:
    """The transaction as an MTA runs it: a refused recipient does not end it."""
    BulwarkMilter.gateway = gw
    Milter.factory = BulwarkMilter
    ctx = TestCtx()
    ctx._msg = email.message_from_bytes(b"Subject: hello\r\n\r\nHello.\r\n")  # (what the edits apply to)
    assert ctx._connect(host="client.outside.test", helo="client.outside.test", ip="198.51.100.5") == Milter.CONTINUE
    assert ctx._envfrom("<alice@outside.test>") == Milter.CONTINUE
    answers = [ctx._envrcpt(f"<{r}>") for r in rcpts]
    assert ctx._data() == Milter.CONTINUE
    for h, v in (("From", "alice@outside.test"), ("To", ", ".join(rcpts)), ("Subject", "hello")):
        ctx._header(h, v)
    ctx._eoh()
    ctx._feed_body(io.BytesIO(b"Hello.\r\n"))
    rc = ctx._eom()
    ctx._close()
    return ctx, answers, rc


def test_another_recipients_block_entry_is_not_shown_to_the_others() -> None:
    gw, _q, sink = make_gateway(_doc())
    ctx, answers, rc = _send(gw, "bob@example.com", "carol@example.com")
    assert answers == [Milter.CONTINUE, Milter.REJECT] and rc == Milter.ACCEPT
    assert "USER_BLOCKLIST_SENDER" not in _symbols(ctx)
    assert {r["address"]: r["action"] for r in sink.records[-1]["recipients"]}["carol@example.com"] == "reject"
    assert "USER_BLOCKLIST_SENDER" in {s["name"] for s in sink.records[-1]["symbols"]}  # (the log has it)


def test_a_recipients_own_symbols_are_shown_when_it_is_the_only_one() -> None:
    gw, _q, _sink = make_gateway(_doc())
    ctx, rc = run(gw, "alice@outside.test", "dave@example.com")
    assert rc == Milter.ACCEPT and "USER_ALLOWLIST_SENDER" in _symbols(ctx)
    ctx, rc = run(gw, "alice@outside.test", "postmaster@example.com")
    assert rc == Milter.ACCEPT and "ALLOWLIST_RECIPIENT" in _symbols(ctx)


def test_one_recipients_allow_entries_are_not_shown_beside_another_recipient() -> None:
    gw, _q, _sink = make_gateway(_doc())
    ctx, rc = run(gw, "alice@outside.test", "dave@example.com", "postmaster@example.com", "bob@example.com")
    assert rc == Milter.ACCEPT
    assert not {"USER_ALLOWLIST_SENDER", "ALLOWLIST_RECIPIENT"} & _symbols(ctx)


def test_a_tagged_and_a_plain_form_of_one_recipient_are_one_recipient() -> None:
    gw, _q, _sink = make_gateway(_doc())
    ctx, rc = run(gw, "alice@outside.test", "dave@example.com", "prvs=1234abcdef=dave@example.com")
    assert rc == Milter.ACCEPT and "USER_ALLOWLIST_SENDER" in _symbols(ctx)
