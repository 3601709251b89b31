"""A trap address is accepted with a domain written as a person types it (the settings check
allows ``Trap@Bücher.example.``: a trailing dot, a Unicode domain), but it was compared as
typed with the recipient, which arrives as the MTA spells it (``trap@xn--bcher-kva.example``,
no trailing dot): such a trap never matched, and its mail was delivered as ordinary mail."""

from __future__ import annotations

from gateway_milter.layers.spamtrap import SpamTrapSettings, is_trap
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy


def test_it_matches_a_trap_written_with_a_trailing_dot() -> None:
    s = SpamTrapSettings(addresses=("trap@example.com.",))
    assert is_trap("trap@example.com", s)
    assert is_trap("<Trap@Example.COM.>", s)


def test_it_matches_a_trap_written_with_a_unicode_domain() -> None:
    s = SpamTrapSettings(addresses=("Trap@Bücher.example.",))
    assert is_trap("trap@xn--bcher-kva.example", s)
    assert not is_trap("trap@xn--bcher-kva.example.org", s)


def test_a_local_part_trap_still_matches_every_domain() -> None:
    s = SpamTrapSettings(addresses=("spamtrap@",))
    assert is_trap("SpamTrap@xn--bcher-kva.example", s)
    assert not is_trap("other@example.com", s)


def test_the_layer_counts_a_unicode_trap(store: MemoryStore) -> None:
    pol = policy({"spamtrap": {"addresses": ["trap@bücher.example"], "train_bayes": False}},
                 domains=["bücher.example"])
    ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("trap@xn--bcher-kva.example",))
    assert ctx.layer("spamtrap").has("SPAMTRAP")


def test_an_address_extension_of_a_trap_is_the_trap(store: MemoryStore) -> None:
    # trap+x@ is delivered to trap@'s mailbox (Postfix's recipient_delimiter): it was ordinary
    # mail, neither held nor learned, its client not marked
    s = SpamTrapSettings(addresses=("trap@example.com", "catch@"))
    assert is_trap("trap+x@example.com", s) and is_trap("Catch+News@other.example", s)
    assert is_trap("prvs=1234abcdef=trap+x@example.com", s)
    assert not is_trap("trapx@example.com", s) and not is_trap("+trap@example.com", s)
    assert not is_trap("trap+x@example.com", SpamTrapSettings(addresses=("trap@example.com",), recipient_delimiter=""))
    assert is_trap("trap-x@example.com", SpamTrapSettings(addresses=("trap@example.com",), recipient_delimiter="+-"))
    pol = policy({"spamtrap": {"addresses": ["trap@example.com"], "train_bayes": False}})
    assert make_ctx(msg("buy", "cheap"), pol, rcpts=("trap+x@example.com",)).layer("spamtrap").has("SPAMTRAP")
