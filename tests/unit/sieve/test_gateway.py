"""Admin Sieve scripts through the whole transaction driver (MAIL, RCPT, end of message)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.pipeline.transaction import Gateway
from gateway_milter.policy.provider import StaticPolicyProvider
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Action
from tests.unit.sieve.helpers import only_layers

RAW = b"From: Alice <alice@outside.test>\r\nTo: bob@example.com\r\nSubject: Invoice overdue\r\n\r\nPlease pay.\r\n"


class Store:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        meta = {**meta, "qid": f"q{len(self.items) + 1}", "path": "x"}
        self.items.append(meta)
        return meta


class Sink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def deliver(scripts: list[dict[str, Any]], rcpts: tuple[str, ...] = ("bob@example.com",),
            raw: bytes = RAW) -> tuple[Any, Any, Store]:
    doc = {"settings": only_layers("lists", "direction", "relay"), "domains": [{"name": "example.com"}], "scripts": scripts}
    store = Store()
    gw = Gateway(StaticPolicyProvider(PolicySnapshot.from_document(doc, 1)), store, Sink())
    ctx = gw.begin(ConnectionInfo(client_ip="203.0.113.9", helo="mail.outside.test", client_name="mail.outside.test"))
    assert gw.mail(ctx, "alice@outside.test").action == "continue"
    for r in rcpts:
        gw.rcpt(ctx, r)
    for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n"):
        n, _, v = line.decode("utf-8", "surrogateescape").partition(": ")  # as the milter's header callback
        ctx.add_header(n, v)
    ctx.body.write(raw.split(b"\r\n\r\n", 1)[1])
    return gw.eom(ctx), ctx, store


def test_it_applies_header_edits_and_added_recipients_from_scripts() -> None:
    dec, ctx, _ = deliver([{"name": "tag", "source":
                            'require ["editheader", "copy"]; if header :contains "subject" "invoice" {'
                            ' addheader "X-Finance" "yes"; redirect :copy "audit@example.com"; }'}])
    assert dec.action is Action.ACCEPT
    assert [(e.op, e.name, e.value) for e in dec.header_edits][:1] == [("insert", "X-Finance", "yes")]
    assert dec.add_recipients == ["audit@example.com"]
    assert ctx.outcome.decided_by == "system:default"


def test_it_quarantines_through_a_script_before_the_reply() -> None:
    dec, ctx, store = deliver([{"name": "hold", "source":
                                'require ["fileinto"]; if header :contains "subject" "invoice" { fileinto "Quarantine"; }'}])
    assert dec.action is Action.DISCARD and len(store.items) == 1 and dec.quarantine_ids == ["q1"]
    assert ctx.outcome.decided_by == "script:hold:1"


def test_it_rejects_with_the_script_reason() -> None:
    dec, _, _ = deliver([{"name": "no", "source": 'require "reject"; reject "We do not accept invoices";'}])
    assert dec.action is Action.REJECT and str(dec.reply) == "550 5.7.1 We do not accept invoices"


@pytest.mark.parametrize("subject", [b"Gr\xfc\xdfe aus Bonn", b"Gr\xc3\xbc\xc3\x9fe aus Bonn",
                                     b"=?iso-8859-1?q?Gr=FC=DFe?= aus Bonn"])
def test_scripts_read_8bit_headers_as_text(subject: bytes) -> None:
    """A Subject of raw Latin-1 bytes (not UTF-8) reached the scripts as the milter's surrogate
    escapes: a script that copied it into a header failed at run time (451, on every retry of
    the message) and a test for "Grüße" did not match it. Raw bytes are read as UTF-8, else
    as Latin-1, as the other layers read them."""
    raw = RAW.replace(b"Subject: Invoice overdue", b"Subject: " + subject)
    copy = ('require ["editheader", "variables"];'
            ' if header :matches "subject" "*" { addheader "X-Copy" "${1}"; }'
            ' if header :contains "subject" "Grüße" { addheader "X-Hit" "yes"; }')
    dec, _, _ = deliver([{"name": "copy", "source": copy}], raw=raw)
    assert dec.action is Action.ACCEPT
    assert sorted((e.name, e.value) for e in dec.header_edits if e.op == "insert") == \
        [("X-Copy", "Grüße aus Bonn"), ("X-Hit", "yes")]
    dec, _, _ = deliver([{"name": "drop", "source": 'require "editheader"; deleteheader :contains "subject" "Grüße";'}],
                        raw=raw)
    assert [(e.op, e.name) for e in dec.header_edits if e.op == "delete"] == [("delete", "subject")]


def test_a_copied_value_over_the_field_limit_is_cut_not_an_error() -> None:
    """A Subject of 3 KB copied into a header went over the 2,048-byte field limit: a run-time
    error, so 451 on every try of that message. A value built at run time is cut on a
    character boundary (as variables are cut) and the trace says so; the script's own text
    over the limit stays an error of the script."""
    raw = RAW.replace(b"Subject: Invoice overdue", b"Subject: " + "Grüße ".encode() * 500)
    copy = 'require ["editheader", "variables"]; if header :matches "subject" "*" { addheader "X-Copy" "[x] ${1}"; }'
    dec, ctx, _ = deliver([{"name": "copy", "source": copy}], raw=raw)
    assert dec.action is Action.ACCEPT
    (value,) = [e.value for e in dec.header_edits if e.name == "X-Copy"]
    size = len("X-Copy") + 2 + len(value.encode())  # (the field limit counts name, ": " and value)
    assert value.startswith("[x] Grüße Grüße") and 2048 - 1 <= size <= 2048  # (a 2-byte character may not fit)
    assert [t.detail for t in ctx.trace if t.event == "warning"] == \
        ["line 1: addheader value cut to the 2048-byte field limit"]
    dec, ctx, _ = deliver([{"name": "copy", "source": copy}])  # a short one: as it is, no warning
    assert [e.value for e in dec.header_edits if e.name == "X-Copy"] == ["[x] Invoice overdue"]
    assert not [t for t in ctx.trace if t.event == "warning"]


def test_a_nul_in_a_copied_value_is_left_out_not_an_error() -> None:
    """A Subject holding a NUL byte copied into a header: a run-time error (451 on every try);
    the NUL is left out, with a warning. A NUL in the script's own text stays an error."""
    raw = RAW.replace(b"Subject: Invoice overdue", b"Subject: Invoice\x00 overdue")
    copy = 'require ["editheader", "variables"]; if header :matches "subject" "*" { addheader "X-Copy" "${1}"; }'
    dec, ctx, _ = deliver([{"name": "copy", "source": copy}], raw=raw)
    assert dec.action is Action.ACCEPT
    assert [e.value for e in dec.header_edits if e.name == "X-Copy"] == ["Invoice overdue"]
    assert [t.detail for t in ctx.trace if t.event == "warning"] == ["line 1: NUL characters left out of the addheader value"]
