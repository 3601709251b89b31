"""A host allow-list entry exempts a message from scoring (and greylisting, DMARC: the fact
``allowlisted``) only for a client whose name is verified. It matched the HELO name too, which
the client says of itself: any spammer greeting with ``EHLO mail.partner.test`` was exempt
from the spam score. A reverse name Sendmail did not confirm ({client_resolve} FAIL: anyone
can set the PTR of their own address) is no better. Greylisting's exempt_client_names already
goes by the verified name alone (ConnectionInfo.verified_name)."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, write_rules


def _policy(tmp: Path) -> PolicySnapshot:
    rules = write_rules(tmp, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    return PolicySnapshot.from_document({
        "settings": {"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                     "scoring": {"layers": ["rules"], "fitted_scores": False}},
        "domains": ["example.com"],
        "lists": [{"list": "allow", "kind": "host", "value": "mail.partner.test"}]})


def test_a_helo_name_alone_does_not_allowlist(tmp_path: Path, store: MemoryStore) -> None:
    ctx = make_ctx(msg("Offer", "spammy"), _policy(tmp_path))
    ctx.conn.helo = "mail.partner.test"  # client_name "unknown": Postfix found no verified name
    res = ctx.layer("scoring")
    assert res.fact("exempt") is None and res.has("SPAM_SCORE_QUARANTINE")


def test_an_unconfirmed_reverse_name_does_not_allowlist(tmp_path: Path, store: MemoryStore) -> None:
    ctx = make_ctx(msg("Offer", "spammy"), _policy(tmp_path))
    ctx.conn.client_name = "mail.partner.test"
    ctx.conn.macros["{client_resolve}"] = "FAIL"  # Sendmail: the PTR's name does not resolve back
    res = ctx.layer("scoring")
    assert res.fact("exempt") is None and res.has("SPAM_SCORE_QUARANTINE")


def test_a_verified_client_name_still_allowlists(tmp_path: Path, store: MemoryStore) -> None:
    ctx = make_ctx(msg("Offer", "spammy"), _policy(tmp_path))
    ctx.conn.client_name = "mail.partner.test"
    res = ctx.layer("scoring")
    assert res.fact("exempt") == "allowlisted" and ctx.layer("lists").has("ALLOWLIST_HOST")
