"""An ``exempt_senders`` entry matches the sender as written, not only as the triplet keeps it.
The entries were compared with the triplet's form of the sender, in which numbers standing alone
in the local part read ``#`` (VERP ids): an exempt ``alerts-2024@vendor.example`` never matched
``alerts-2024@vendor.example``, and that sender was greylisted. A trailing dot on the sender's
domain (an absolute name, the same domain) missed ``@domain`` entries likewise."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg


def reason(exempt: list[str], mail_from: str) -> Any:
    pol = PolicySnapshot.from_document({"settings": {"greylist": {"mode": "on", "exempt_senders": exempt}},
                                        "domains": ["example.com"]})
    ctx = make_ctx(msg(), pol, stage=Stage.RCPT, mail_from=mail_from)
    assert ctx.runner is not None
    return ctx.runner.recipient_result(ctx, "greylist", ctx.recipients[0]).fact("reason")


@pytest.mark.parametrize(("entry", "sender"), [
    ("alerts-2024@vendor.example", "alerts-2024@vendor.example"),
    ("Alerts-2024@Vendor.example", "prvs=0123abcdef=alerts-2024@vendor.example"),
    ("@vendor.example", "noreply@vendor.example."),
    ("noreply@vendor.example.", "noreply@vendor.example"),
])
def test_an_exempt_sender_is_exempt(store: MemoryStore, entry: str, sender: str) -> None:
    assert reason([entry], sender) == "exempt sender"


def test_a_sender_with_another_number_is_not_exempt(store: MemoryStore) -> None:
    assert reason(["alerts-2024@vendor.example"], "alerts-2025@vendor.example") is None
    assert reason(["@vendor.example"], "x@notvendor.example") is None
