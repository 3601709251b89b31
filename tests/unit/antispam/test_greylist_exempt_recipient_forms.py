"""``exempt_recipients`` entries match a recipient of an alias domain by the domain it is an
alias of, and a recipient written with a trailing dot: both were greylisted although the admin
had exempted them."""

from __future__ import annotations

from gateway_milter.pipeline.runner import LayerResult
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg


def judged(exempt: list[str], rcpt: str) -> LayerResult:
    pol = PolicySnapshot.from_document({
        "settings": {"greylist": {"mode": "on", "exempt_recipients": exempt}},
        "domains": [{"name": "example.com", "aliases": ["example.net"]}]})
    ctx = make_ctx(msg(), pol, stage=Stage.RCPT, rcpts=(rcpt,))
    assert ctx.runner is not None
    return ctx.runner.recipient_result(ctx, "greylist", ctx.recipients[0])


def test_an_alias_domains_recipient_matches_the_domains_entries(store: MemoryStore) -> None:
    for exempt in (["@example.com"], ["postmaster@example.com"]):
        res = judged(exempt, "postmaster@example.net")
        assert res.has("GREYLIST_EXEMPT") and res.fact("reason") == "exempt recipient", res.facts
    assert judged(["@example.com"], "postmaster@example.com").has("GREYLIST_EXEMPT")
    assert judged(["@example.org"], "postmaster@example.net").has("GREYLIST_DEFER")  # the control


def test_a_trailing_dot_on_the_recipient_or_the_entry_does_not_matter(store: MemoryStore) -> None:
    assert judged(["@example.com"], "bob@example.com.").has("GREYLIST_EXEMPT")
    assert judged(["bob@example.com."], "bob@example.com").has("GREYLIST_EXEMPT")
