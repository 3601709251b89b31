"""redirect without :copy replaces the recipients; with :copy it adds one (RFC 5228 4.2, RFC 3894)."""

from __future__ import annotations

from tests.unit.sieve.test_gateway import deliver

from gateway_milter.verdict import Action


def test_it_drops_the_original_recipients_for_a_plain_redirect() -> None:
    dec, ctx, _ = deliver([{"name": "fwd", "source": 'redirect "desk@example.com";'}],
                          rcpts=("bob@example.com", "carol@example.com"))
    assert dec.action is Action.ACCEPT
    assert dec.add_recipients == ["desk@example.com"]
    assert dec.delete_recipients == ["bob@example.com", "carol@example.com"]


def test_it_keeps_the_original_recipients_with_copy_or_keep() -> None:
    dec, _, _ = deliver([{"name": "fwd", "source": 'require "copy"; redirect :copy "desk@example.com";'}])
    assert dec.add_recipients == ["desk@example.com"] and dec.delete_recipients == []
    dec, _, _ = deliver([{"name": "fwd", "source": 'redirect "desk@example.com"; keep;'}])
    assert dec.add_recipients == ["desk@example.com"] and dec.delete_recipients == []
