"""A quoted local part that needs no quotes names the same mailbox: ``"closed"@example.com`` is
delivered to ``closed@example.com`` by the MTA, so the lists compare it unquoted (it passed the
recipient block list, and a sender block entry the same way). A local part that needs its
quotes (``"john doe"@``) stays as written."""

from __future__ import annotations

from gateway_milter.context import ConnectionInfo
from gateway_milter.policy.lists import normal_address
from tests.unit.spine.conftest import make_gateway


def test_a_needlessly_quoted_recipient_is_judged_as_its_plain_address() -> None:
    gw, _q, _s = make_gateway()
    ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.5", client_name="unknown", helo="mx.outside.test"))
    gw.mail(ctx, "alice@outside.test")
    for rcpt in ('"closed"@example.com', '"clo\\sed"@Example.COM'):
        d = gw.rcpt(ctx, rcpt)
        assert d.reply is not None and d.reply.code.startswith("5"), rcpt
    assert gw.rcpt(ctx, "bob@example.com").reply is None
    ctx.close()


def test_a_sender_in_quotes_is_judged_as_its_plain_address() -> None:
    gw, _q, _s = make_gateway()
    ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.5", client_name="unknown", helo="mx.outside.test"))
    gw.mail(ctx, '"mallory"@spam.test')
    d = gw.rcpt(ctx, "bob@example.com")
    assert d.reply is not None and d.reply.code.startswith("5")
    ctx.close()


def test_quotes_that_are_needed_are_kept() -> None:
    assert normal_address('"john doe"@x.test') == '"john doe"@x.test'
    assert normal_address('""@x.test') == '""@x.test'
    assert normal_address('"a.b"@X.test') == "a.b@x.test"
