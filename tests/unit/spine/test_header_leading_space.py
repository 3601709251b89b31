"""Header values as written: the milter asks the MTA for the white space after each header's
colon (SMFIP_HDR_LEADSPC), keeps it, writes the message back with it (DKIM's simple header
canonicalization signs it) and gives its own header values the one space the MTA then no longer
adds. Without the option the MTA takes one space off and puts one back, so ``Subject:x`` was
read and written back as ``Subject: x``."""

from __future__ import annotations

from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.antispam.evaluate import make_context
from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.front.milter import BulwarkMilter
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import HeaderEdit
from tests.unit.spine.conftest import make_gateway
from tests.unit.spine.test_milter_front import NO_NR_OPTS, run

# what the MTA passes once the option is on: all that follows each colon
WRITTEN = [(b"From", b" Alice <alice@outside.test>"), (b"Subject", b"x"), (b"Date", b"\tFri, 4 Dec 2026 10:00:00 +0000"),
           (b"To", b"  bob@example.com"), (b"X-Folded", b" one\r\n\ttwo")]
RAW = b"".join(n + b":" + v + b"\r\n" for n, v in WRITTEN) + b"\r\nHi.\r\n"


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


def _negotiated(leadspc: bool) -> BulwarkMilter:
    m = BulwarkMilter()
    m.negotiate([Milter.CURR_ACTS, 0x1FFFFF if leadspc else 0x1FFFFF & ~Milter.P_HDR_LEADSPC, 0, 0])
    return m


def _ctx() -> MessageContext:
    return MessageContext(ConnectionInfo(client_ip="198.51.100.5"), PolicySnapshot.empty())


@pytest.mark.parametrize("offered", [True, False])
def test_it_asks_for_the_leading_space_when_the_mta_offers_it(offered: bool) -> None:
    m = BulwarkMilter()
    bits = 0x1FFFFF if offered else 0x1FFFFF & ~Milter.P_HDR_LEADSPC
    opts = [Milter.CURR_ACTS, bits, 0, 0]
    assert m.negotiate(opts) == Milter.CONTINUE
    assert bool(opts[1] & Milter.P_HDR_LEADSPC) is offered
    assert m._leadspc is offered
    # pymilter's own choices stand beside it (the no-reply steps, the steps not wanted)
    assert opts[1] & Milter.P_NR_HDR and opts[1] & Milter.P_NR_BODY and not opts[1] & Milter.P_RCPT_REJ


def test_the_message_is_written_back_as_received() -> None:
    m = _negotiated(True)
    m.ctx = _ctx()
    for name, value in WRITTEN:
        assert m.header(name.decode(), value) == Milter.NOREPLY  # (Postfix does not wait for it)
    m.ctx.body.write(b"Hi.\r\n")
    assert m.ctx.raw_bytes() == RAW
    # the values the layers read are as before: without the space after the colon
    assert m.ctx.header("Subject") == "x" and m.ctx.header("From") == "Alice <alice@outside.test>"
    assert m.ctx.header("To") == " bob@example.com"  # (as Postfix passed it without the option)
    assert m.ctx.header_gaps == [" ", "", "", " ", " "]


def test_without_the_option_the_space_is_assumed() -> None:
    m = _negotiated(False)
    m.ctx = _ctx()
    m.header("Subject", b"x")  # the MTA took the space off: it is put back
    m.ctx.body.write(b"")
    assert m.ctx.raw_bytes().startswith(b"Subject: x\r\n")


def test_a_message_file_is_read_as_the_milter_reads_it() -> None:
    ctx = make_context(RAW, PolicySnapshot.empty())
    assert ctx.raw_bytes() == RAW
    assert ctx.header("Date") == "\tFri, 4 Dec 2026 10:00:00 +0000" and ctx.header("Subject") == "x"


def test_edits_keep_the_spacing_of_the_other_headers() -> None:
    ctx = make_context(RAW, PolicySnapshot.empty())
    ctx.apply_delivery_changes([HeaderEdit("insert", "X-First", "1"), HeaderEdit("change", "Subject", "[SPAM] x", 1),
                                HeaderEdit("delete", "To", "", 1), HeaderEdit("add", "X-Last", "2")], None)
    assert ctx.raw_bytes() == (b"X-First: 1\r\nFrom: Alice <alice@outside.test>\r\nSubject: [SPAM] x\r\n"
                               b"Date:\tFri, 4 Dec 2026 10:00:00 +0000\r\nX-Folded: one\r\n\ttwo\r\nX-Last: 2\r\n"
                               b"\r\nHi.\r\n")
    assert ctx.received_bytes() == RAW


def test_the_milters_own_values_get_their_space(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    m = BulwarkMilter()
    monkeypatch.setattr(m, "addheader", lambda *a: calls.append(("add", *a)))
    monkeypatch.setattr(m, "chgheader", lambda *a: calls.append(("chg", *a)))
    for leadspc in (True, False):
        m._leadspc = leadspc
        m._header_edit(HeaderEdit("add", "X-A", "v"))
        m._header_edit(HeaderEdit("insert", "X-B", "w"))
        m._header_edit(HeaderEdit("change", "Subject", "[SPAM] x", 1))
        m._header_edit(HeaderEdit("delete", "X-C", "", 1))
    assert calls == [("add", "X-A", " v"), ("add", "X-B", " w", 1), ("chg", "Subject", 1, " [SPAM] x"),
                     ("chg", "X-C", 1, ""),
                     ("add", "X-A", "v"), ("add", "X-B", "w", 1), ("chg", "Subject", 1, "[SPAM] x"),
                     ("chg", "X-C", 1, "")]


def test_a_whole_transaction_under_the_option() -> None:
    gw, _, _ = make_gateway()
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com")
    assert ctx._protocol & Milter.P_HDR_LEADSPC  # negotiated with pymilter's test MTA
    assert rc == Milter.ACCEPT
    # the test MTA writes what it is given after "Name:" (tests/conftest.py): one space, no more
    assert ctx._msg["X-Bulwark-Result"].startswith("accept; score=0.00")


def test_folds_go_to_the_mta_as_bare_line_feeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Subject the MTA passed folded with CRLF keeps its fold when tagged; the changed value
    goes back with a bare LF, as libmilter takes it (the MTA writes the line ends)."""
    calls: list[tuple[Any, ...]] = []
    m = _negotiated(True)
    monkeypatch.setattr(m, "chgheader", lambda *a: calls.append(a))
    m.ctx = _ctx()
    m.header("Subject", b" a long\r\n subject")
    assert m.ctx.header("Subject") == "a long\r\n subject"
    m._header_edit(HeaderEdit("change", "Subject", "[SPAM] " + m.ctx.header("Subject"), 1))
    assert calls == [("Subject", 1, " [SPAM] a long\n subject")]
