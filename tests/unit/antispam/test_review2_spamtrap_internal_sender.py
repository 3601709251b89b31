"""Mail to a spam trap from an internal sender (a trusted network's server, an authenticated
user: say a colleague writing to a departed employee's address kept as a trap) is not spam from
outside: it marked the internal server's address, so every later message it relayed carried
SPAMTRAP_IP, and taught Bayes the organisation's own mail as spam. It still counts as SPAMTRAP."""

from __future__ import annotations

from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Direction
from tests.unit.antispam.helpers import make_ctx, msg, policy

SETTINGS = {"spamtrap": {"addresses": ["trap@example.com"]}, "bayes": {"min_learned": 1}}


def test_it_does_not_mark_a_trusted_network_or_learn_its_mail(store: MemoryStore) -> None:
    pol = policy(SETTINGS, trusted=["10.0.0.0/8"])
    ctx = make_ctx(msg("lunch?", "see you"), pol, ip="10.1.2.3", mail_from="carol@example.com",
                   rcpts=("trap@example.com",), direction=Direction.LOCAL)
    res = ctx.layer("spamtrap")
    assert res.has("SPAMTRAP")
    assert store.get("trap:ip:10.1.2.3") is None
    assert not res.fact("learned")
    later = make_ctx(msg("report", "numbers"), pol, ip="10.1.2.3", mail_from="dave@example.com",
                     rcpts=("bob@example.com",), direction=Direction.LOCAL)
    assert not later.layer("spamtrap").has("SPAMTRAP_IP")


def test_it_does_not_mark_an_authenticated_client(store: MemoryStore) -> None:
    pol = policy(SETTINGS)
    ctx = make_ctx(msg("hi", "there"), pol, ip="198.51.100.20", auth="carol", mail_from="carol@example.com",
                   rcpts=("trap@example.com",), direction=Direction.LOCAL)
    res = ctx.layer("spamtrap")
    assert res.has("SPAMTRAP") and not res.fact("learned")
    assert store.get("trap:ip:198.51.100.20") is None


def test_it_still_marks_an_outside_client(store: MemoryStore) -> None:
    pol = policy(SETTINGS, trusted=["10.0.0.0/8"])
    res = make_ctx(msg("buy", "cheap"), pol, rcpts=("trap@example.com",)).layer("spamtrap")
    assert res.has("SPAMTRAP") and res.fact("learned") is True
    assert store.get("trap:ip:203.0.113.7") is not None
