"""``exempt_recipients`` written as addresses (``billing@example.com``, as every other address
setting is written, spam traps' included) were accepted and compared with the recipient's local
part only, so they never matched: the bounces an administrator had exempted were refused."""

from __future__ import annotations

from gateway_milter.layers.backscatter import sign
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy

DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')


def judge(store: MemoryStore, exempt: list[str], rcpt: str) -> bool:
    sign("alice@example.com", store)  # a key exists: tags are judged
    pol = policy({"backscatter": {"mode": "on", "exempt_recipients": exempt}}, domains=["example.com", "example.org"])
    return make_ctx(DSN, pol, mail_from="", rcpts=(rcpt,)).layer("backscatter").has("BACKSCATTER_UNSIGNED_BOUNCE")


def test_an_exempt_address_receives_untagged_bounces(store: MemoryStore) -> None:
    assert not judge(store, ["billing@example.com"], "billing@example.com")
    assert not judge(store, ["billing@example.com"], "Billing@Example.COM")
    assert not judge(store, ["billing@example.com"], "prvs=1999abcdef=billing@example.com")


def test_an_exempt_address_is_only_that_address(store: MemoryStore) -> None:
    assert judge(store, ["billing@example.com"], "billing@example.org")
    assert judge(store, ["billing@example.com"], "bob@example.com")


def test_local_parts_still_match_every_domain(store: MemoryStore) -> None:
    assert not judge(store, ["billing"], "billing@example.org")
    assert not judge(store, ["billing@"], "billing@example.org")
