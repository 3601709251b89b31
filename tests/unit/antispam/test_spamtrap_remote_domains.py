"""A trap address is one of ours: a ``local@`` entry (that local part in every domain) matches
local domains only. Outbound mail to ``info@partner.test`` is not trap mail: taken for it, it was
discarded, learned as spam and its submitting client marked."""

from __future__ import annotations

from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Direction
from tests.unit.antispam.helpers import make_ctx, msg, policy


def test_a_local_part_trap_does_not_catch_outbound_mail_to_a_remote_domain(store: MemoryStore) -> None:
    pol = policy({"spamtrap": {"addresses": ["info@"], "train_bayes": False}})
    ctx = make_ctx(msg("Offer", "our quote"), pol, mail_from="alice@example.com", auth="alice",
                   rcpts=("info@partner.test",), direction=Direction.OUTBOUND)
    res = ctx.layer("spamtrap")
    assert not res.has("SPAMTRAP") and res.fact("traps") == []
    assert store.get("trap:ip:203.0.113.7") is None  # the submitting client is not marked
    inbound = make_ctx(msg("Offer", "cheap"), pol, rcpts=("info@example.com",))
    assert inbound.layer("spamtrap").has("SPAMTRAP")  # the same local part in our domain is a trap


def test_an_ipv4_mapped_client_is_marked_as_its_ipv4_address(store: MemoryStore) -> None:
    pol = policy({"spamtrap": {"addresses": ["trap@example.com"], "train_bayes": False}})
    make_ctx(msg("buy", "cheap"), pol, ip="::ffff:198.51.100.9", rcpts=("trap@example.com",)).layer("spamtrap")
    later = make_ctx(msg("hello", "again"), pol, ip="198.51.100.9", rcpts=("bob@example.com",))
    assert later.layer("spamtrap").has("SPAMTRAP_IP")
