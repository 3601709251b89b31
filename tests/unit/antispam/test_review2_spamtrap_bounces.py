"""A bounce or an auto-reply to a spam trap comes from the mail server of someone whose address
a spammer's message named, not from the spammer: trap addresses are harvested and forged as
senders. It marked that server (a large provider's outbound relay: every message from it then
carried SPAMTRAP_IP for ip_ttl) and taught Bayes a delivery report as spam. It still counts as
SPAMTRAP."""

from __future__ import annotations

import pytest

from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy

SETTINGS = {"spamtrap": {"addresses": ["trap@example.com"]}, "bayes": {"min_learned": 1}}
DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')


@pytest.mark.parametrize("raw,sender", [
    (DSN, ""),  # a bounce
    (msg("Out of office", "I am away", headers="Auto-Submitted: auto-replied\r\n"), "carol@remote.test"),
], ids=["bounce", "auto-reply"])
def test_it_does_not_mark_the_server_of_automatic_mail(store: MemoryStore, raw: bytes, sender: str) -> None:
    res = make_ctx(raw, policy(SETTINGS), mail_from=sender, rcpts=("trap@example.com",)).layer("spamtrap")
    assert res.has("SPAMTRAP") and not res.fact("learned")
    assert store.get("trap:ip:203.0.113.7") is None


def test_it_still_marks_mail_that_says_it_is_not_automatic(store: MemoryStore) -> None:
    pol = policy(SETTINGS)
    spam = msg("buy", "cheap", headers="Auto-Submitted: no\r\n")
    res = make_ctx(spam, pol, rcpts=("trap@example.com",)).layer("spamtrap")
    assert res.has("SPAMTRAP") and res.fact("learned") is True
    assert store.get("trap:ip:203.0.113.7") is not None
