"""The pymilter front driven by pymilter's own TestCtx: no MTA involved."""

from __future__ import annotations

import io
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.front.milter import BulwarkMilter
from gateway_milter.pipeline import runner
from tests.unit.cyclic import cyclic_garbage
from tests.unit.spine.conftest import BASE_POLICY, make_gateway

# TestCtx closes the session on a NOREPLY answer, so the MTA here offers no no-reply bits (an
# MTA may legitimately lack them; Postfix has them and the integration tier covers that).
NO_REPLY_BITS = Milter.P_NR_CONN | Milter.P_NR_HELO | Milter.P_NR_DATA | Milter.P_NR_HDR | Milter.P_NR_BODY
NO_NR_OPTS = [Milter.CURR_ACTS, 0x1FFFFF & ~NO_REPLY_BITS, 0, 0]


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


MSG = b"From: Alice <alice@outside.test>\nTo: bob@example.com\nSubject: hello\n\nHi Bob.\n"


def run(gw: Any, sender: str, *rcpts: str, ip: str = "198.51.100.5", msg: bytes = MSG,
        macros: dict[str, str] | None = None) -> tuple[TestCtx, int]:
    BulwarkMilter.gateway = gw
    Milter.factory = BulwarkMilter
    ctx = TestCtx()
    for k, v in (macros or {}).items():
        ctx._setsymval(k, v)
    assert ctx._connect(host="client.outside.test", helo="client.outside.test", ip=ip) == Milter.CONTINUE
    rc = ctx._feedFile(io.BytesIO(msg), sender, *rcpts)
    ctx._close()
    return ctx, rc


def test_it_accepts_a_clean_message_and_adds_the_result_header() -> None:
    gw, q, sink = make_gateway()
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com")
    assert rc == Milter.ACCEPT
    assert ctx._msg["X-Bulwark-Result"].startswith("accept; score=0.00")
    assert sink.records[-1]["action"] == "accept" and sink.records[-1]["direction"] == "inbound"
    assert not q.items


def test_a_connection_leaves_no_reference_cycles() -> None:
    # the milter, its message context, the Sieve runtime and its hooks are freed when the
    # connection ends, not at the next garbage collection (pymilter's header_bytes and the
    # hooks' reference back to their runtime made cycles of them)
    gw, _, sink = make_gateway()
    run(gw, "alice@outside.test", "bob@example.com")  # first-use caches
    with cyclic_garbage() as left:
        for _ in range(3):
            _, rc = run(gw, "alice@outside.test", "bob@example.com")
            assert rc == Milter.ACCEPT
        _, rc = run(gw, "x@held.test", "ann@other.example")  # a quarantined one
        assert rc == Milter.DISCARD
    assert any(t["source"] == "lists" for t in sink.records[-1]["trace"])  # the Sieve policy ran layers
    assert left == [], left


def test_it_rejects_a_blocklisted_sender_at_rcpt_with_a_5xx_reply() -> None:
    gw, q, sink = make_gateway()
    ctx, rc = run(gw, "eve@spam.test", "bob@example.com")
    assert rc == Milter.REJECT
    assert ctx._reply[:2] == ("550", "5.7.1")
    assert "sender is blocked" in ctx._reply[2]
    assert sink.records[-1]["action"] == "reject"
    assert sink.records[-1]["recipients"][0]["action"] == "reject"


def test_it_rejects_a_blocklisted_network_but_allow_wins_for_the_listed_host() -> None:
    gw, _, _ = make_gateway()
    _, rc = run(gw, "alice@outside.test", "bob@example.com", ip="192.0.2.9")
    assert rc == Milter.REJECT
    _, rc = run(gw, "alice@outside.test", "bob@example.com", ip="192.0.2.7")
    assert rc == Milter.ACCEPT


def test_it_quarantines_and_discards_when_every_recipient_is_held() -> None:
    gw, q, sink = make_gateway()
    ctx, rc = run(gw, "x@held.test", "ann@other.example")
    assert rc == Milter.DISCARD
    [(raw, meta)] = q.items
    assert b"Subject: hello" in raw and meta["recipients"] == ["ann@other.example"] and meta["queue"] == "user"
    assert sink.records[-1]["action"] == "quarantine"
    assert sink.records[-1]["quarantine"][0]["qid"] == meta["qid"]


def test_it_tempfails_when_a_layer_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "FAULT_INJECT", frozenset({"size"}))
    gw, q, sink = make_gateway()
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com")
    assert rc == Milter.TEMPFAIL
    assert ctx._reply[0] == "451"
    assert sink.records[-1]["action"] == "tempfail"
    assert any(t["event"] == "error" and t["source"] == "size" for t in sink.records[-1]["trace"])


def test_a_failure_in_a_no_reply_callback_is_answered_4xx_at_end_of_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # headers and body are streamed without replies: an exception there must still end in 4xx
    from gateway_milter.context import MessageContext

    original = MessageContext.add_header

    def broken(self: MessageContext, name: str, value: str) -> None:
        if name == "Subject":
            raise MemoryError("no room for the header")
        original(self, name, value)

    gw, q, sink = make_gateway()
    with monkeypatch.context() as m:
        m.setattr(MessageContext, "add_header", broken)
        ctx, rc = run(gw, "alice@outside.test", "bob@example.com")
    assert rc == Milter.TEMPFAIL and ctx._reply[0] == "451"
    assert sink.records[-1]["action"] == "tempfail"
    assert any(t["event"] == "error" and "header" in t["detail"] for t in sink.records[-1]["trace"])
    _, rc = run(gw, "alice@outside.test", "bob@example.com")  # the next message is judged afresh
    assert rc == Milter.ACCEPT


def test_it_tempfails_when_quarantine_storage_fails() -> None:
    gw, q, sink = make_gateway()

    def broken(raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        raise OSError("disk full")

    q.store = broken  # type: ignore[method-assign]
    ctx, rc = run(gw, "x@held.test", "ann@other.example")
    assert rc == Milter.TEMPFAIL and ctx._reply[0] == "451"


def test_it_reads_the_auth_macro_and_treats_the_message_as_outbound() -> None:
    gw, _, sink = make_gateway()
    _, rc = run(gw, "bob@example.com", "someone@remote.test", macros={"{auth_authen}": "bob"})
    assert rc == Milter.ACCEPT
    rec = sink.records[-1]
    assert rec["direction"] == "outbound" and rec["auth_user"] == "bob"


def test_it_refuses_relaying_for_external_senders() -> None:
    gw, _, sink = make_gateway()
    ctx, rc = run(gw, "alice@outside.test", "someone@remote.test")
    assert rc == Milter.REJECT and ctx._reply[0] == "554"
    assert sink.records[-1]["direction"] == "relay"


def test_it_treats_trusted_networks_as_internal() -> None:
    gw, _, sink = make_gateway()
    _, rc = run(gw, "bob@example.com", "someone@remote.test", ip="10.1.2.3")
    assert rc == Milter.ACCEPT and sink.records[-1]["direction"] == "outbound"
    _, rc = run(gw, "bob@example.com", "carol@example.com", ip="10.1.2.3")
    assert sink.records[-1]["direction"] == "local"


def test_it_stores_then_removes_only_the_quarantined_recipient() -> None:
    gw, q, sink = make_gateway()
    ctx, rc = run(gw, "alice@outside.test", "ann@other.example", "held@other.example")
    assert rc == Milter.ACCEPT
    assert ctx._delrcpt == ["<held@other.example>"]
    [(_, meta)] = q.items
    assert meta["recipients"] == ["held@other.example"]
    rec = sink.records[-1]
    assert {r["address"]: r["action"] for r in rec["recipients"]} == {
        "ann@other.example": "accept", "held@other.example": "quarantine"}


def libmilter_setreply(calls: list[tuple[str, ...]]) -> Any:
    """TestCtx.setreply with libmilter's own checks (smfi_setreply: a 4xx/5xx code, no line
    break, at most 980 bytes of text), failing as pymilter does when libmilter refuses."""
    def setreply(self: TestCtx, rcode: str, xcode: str, *msg: str) -> None:
        text = msg[0] if msg else ""
        if rcode[:1] not in "45" or "\r" in text or "\n" in text or len(text.encode()) > 980:
            raise Milter.error("cannot set reply")
        calls.append((rcode, xcode, text))
        self._reply = (rcode, xcode, *msg)
    return setreply


def test_an_administrators_long_refusal_text_is_cut_to_one_reply_libmilter_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.verdict import Reply

    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(TestCtx, "setreply", libmilter_setreply(calls))
    gw, _, sink = make_gateway()
    long_text = "Refused: " + "sehr lange Begründung " * 80  # ~1,750 characters, not ASCII
    monkeypatch.setattr(gw, "rcpt", lambda ctx, to, esmtp: type("D", (), {
        "action": "reject", "reply": Reply("550", "5.7.1", long_text)})())
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com")
    assert rc == Milter.REJECT, calls
    code, enh, text = ctx._reply
    assert (code, enh) == ("550", "5.7.1")
    assert text.startswith("Refused: sehr lange Begr?ndung") and len(text) <= 400 and text.isascii()


def test_a_refusal_libmilter_will_not_take_is_logged_as_the_451_it_became(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    setreply = libmilter_setreply(calls)

    def refusing_552(self: TestCtx, rcode: str, xcode: str, *msg: str) -> None:
        if rcode == "552":
            raise Milter.error("cannot set reply")
        setreply(self, rcode, xcode, *msg)

    monkeypatch.setattr(TestCtx, "setreply", refusing_552)
    doc = {**BASE_POLICY, "settings": {**BASE_POLICY["settings"], "size": {"max_bytes": 1024}}}
    gw, q, sink = make_gateway(doc)
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com", msg=MSG + b"x" * 2000 + b"\n")
    assert rc == Milter.TEMPFAIL
    assert ctx._reply[0] == "451"
    assert sink.records[-1]["action"] == "tempfail", sink.records[-1]["action"]
    assert any(t["source"] == "milter" and t["event"] == "error" for t in sink.records[-1]["trace"])

