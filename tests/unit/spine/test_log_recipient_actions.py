"""The message log's per-recipient actions say what happened: every recipient of a quarantined
message is logged held, also when a Sieve ``redirect :copy`` made the MTA's answer an accept
(they were logged "accept"); and a recipient held at RCPT is not logged held when the end of
data was answered 4xx after all (its copy is withdrawn; it was logged "quarantine")."""

from __future__ import annotations

import copy
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


def _actions(sink: Any) -> dict[str, str]:
    return {r["address"]: r["action"] for r in sink.records[-1]["recipients"]}


def test_a_quarantined_messages_recipients_are_logged_held_beside_a_redirect() -> None:
    doc = copy.deepcopy(BASE_POLICY)
    doc["scripts"] = [{"name": "archive", "position": "before",
                       "source": 'require ["copy", "fileinto"]; redirect :copy "archive@example.com"; fileinto "Junk";'}]
    gw, q, sink = make_gateway(doc)
    _ctx, rc = run(gw, "alice@outside.test", "bob@example.com")
    assert rc == Milter.ACCEPT and q.items  # (the archive copy goes on; bob's is held)
    assert _actions(sink) == {"bob@example.com": "quarantine"}


def test_a_deferred_message_logs_no_recipient_held(monkeypatch: pytest.MonkeyPatch) -> None:
    gw, q, sink = make_gateway()

    def broken(self: Any, *a: Any, **k: Any) -> None:
        raise RuntimeError("the MTA went away")

    monkeypatch.setattr(BulwarkMilter, "addheader", broken)
    BulwarkMilter.gateway = gw
    Milter.factory = BulwarkMilter
    ctx = TestCtx()
    assert ctx._connect(host="client.outside.test", helo="client.outside.test", ip="198.51.100.5") == Milter.CONTINUE
    assert ctx._envfrom("<alice@outside.test>") == Milter.CONTINUE
    for r in ("carol@other.example", "held@other.example"):
        assert ctx._envrcpt(f"<{r}>") == Milter.CONTINUE
    assert ctx._data() == Milter.CONTINUE
    for h, v in (("From", "alice@outside.test"), ("Subject", "hello")):
        ctx._header(h, v)
    ctx._eoh()
    rc = ctx._eom()
    ctx._close()
    assert rc == Milter.TEMPFAIL
    assert not q.items  # (stored, then withdrawn)
    assert set(_actions(sink).values()) == {"tempfail"}, _actions(sink)


def test_a_copy_written_after_the_front_gave_up_is_withdrawn() -> None:
    """The front answers 4xx when end of data overruns its budget and marks the transaction
    abandoned; a quarantine write still under way then finished and was kept: an orphan copy
    the log does not list (a release of it duplicated the retry's)."""
    from gateway_milter.context import ConnectionInfo
    from gateway_milter.verdict import Action

    gw, q, _ = make_gateway()
    ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.5", client_name="unknown", helo="mx.outside.test"))
    real = q.store

    def slow_store(raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        out = real(raw, meta)
        ctx.abandoned = True  # (the front gave up while this copy was being written)
        return out

    q.store = slow_store  # type: ignore[method-assign]
    gw.mail(ctx, "alice@outside.test")
    assert gw.rcpt(ctx, "held@other.example").reply is None  # (held at RCPT by the domain's list)
    ctx.add_header("From", "alice@outside.test")
    ctx.add_header("Subject", "hello")
    ctx.body.write(b"Hi.\r\n")
    d = gw.eom(ctx)
    assert d.action is Action.TEMPFAIL and q.stored == 1 and q.items == [] and ctx.quarantined == []
    ctx.close()


EXE = (b"From: Carol <carol@remote.test>\r\nTo: ann@other.example\r\nSubject: Re: tool\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhere it is\r\n"
       b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=tool.exe\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n--b--\r\n")


def test_the_stripped_attachments_copy_names_the_recipients_it_was_taken_from() -> None:
    """The admin copy of stripped attachments names the recipients the stripped message goes to,
    under their plain address: it named a BATV-tagged address nothing downstream knows and a
    recipient held at RCPT in a quarantine entry of its own (a release delivered to both)."""
    from gateway_milter.context import ConnectionInfo
    from gateway_milter.layers.backscatter import sign
    from gateway_milter.pipeline.rawmessage import split_message
    from gateway_milter.store import set_default_store
    from gateway_milter.store.memory import MemoryStore

    store = MemoryStore()
    set_default_store(store)
    try:
        doc = copy.deepcopy(BASE_POLICY)
        doc["settings"]["attachments"] = {"mode": "on", "action": "strip"}
        doc["settings"]["backscatter"] = {"mode": "on"}
        gw, q, _ = make_gateway(doc)
        tagged = sign("ann@other.example", store)
        ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.5", client_name="unknown", helo="mx.remote.test"))
        gw.mail(ctx, "carol@remote.test")
        for r in (tagged, "held@other.example", "ann@other.example"):
            assert gw.rcpt(ctx, r).reply is None
        headers, body = split_message(EXE)
        for n, v in headers:
            ctx.add_header(n, v)
        ctx.body.write(body)
        gw.eom(ctx)
        copies = {m["queue"]: m["recipients"] for _, m in q.items}
        assert copies.get("user") == ["held@other.example"], copies
        assert copies.get("admin") == ["ann@other.example"], copies
        ctx.close()
    finally:
        set_default_store(None)
