"""Unlearning (a correction spam <-> ham, ``forget``) takes a message's counts back without
borrowing across a token's packed count (spam x 2^32 + ham): a count never goes below 0, as in
SpamAssassin's stores, even when the copy unlearned has tokens the learned copy lacked."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.bayes import HAM_MASK, TOKEN, BayesClassifier, message_keys, scope_key
from gateway_milter.antispam.saview import message_view
from gateway_milter.store import StateStore
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.sqlitestore import SqliteStore
from tests.unit.antispam.helpers import make_ctx, msg

ORIGINAL = msg("quarterly report", "please find the quarterly figures below, regards")
# the same message as the user's mailbox holds it (what `bayes train --spam Maildir/.Junk`
# reads): the delivery agent's Return-Path and the gateway-to-mailbox Received line added,
# tokens the copy learned at the gateway did not have; its digest is the same
DELIVERY = (b"Return-Path: <bounce@mailer.test>\r\n"
            b"Received: from gw.example.com (gw.example.com [192.0.2.25]) by mbox.example.net; "
            b"Sat, 28 Nov 2026 10:00:05 +0000\r\n")
DELIVERED = DELIVERY + ORIGINAL
# another spam of the same Junk folder, learned first: it carries the same delivery tokens
OTHER_SPAM = DELIVERY + msg("win a prize", "claim your casino bonus now")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    return MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.sqlite3")


def counts(store: StateStore, keys: list[str]) -> dict[str, tuple[int, int]]:
    (vals,) = store.counters([(scope_key("global"), [TOKEN + k for k in keys])])
    return {k: (v >> 32, v & HAM_MASK) for k, v in zip(keys, vals, strict=True)}


def test_a_correction_from_another_copy_never_borrows_from_the_spam_count(store: StateStore) -> None:
    bc = BayesClassifier(store, 1)
    assert bc.learn(message_view(make_ctx(ORIGINAL)), False)  # autolearned as ham at the gateway
    assert bc.learn(message_view(make_ctx(OTHER_SPAM)), True)
    delivered = message_view(make_ctx(DELIVERED))
    assert bc.learn(delivered, True)  # corrected to spam from the mailbox copy
    got = counts(store, message_keys(delivered).keys)
    assert all(ham == 0 for _spam, ham in got.values()), got
    assert all(spam in (1, 2) for spam, _ham in got.values()), got
    st = bc.stats()
    assert (st["spam_learned"], st["ham_learned"]) == (2, 0)


def test_forgetting_another_copy_takes_back_what_it_shares_and_leaves_no_wrapped_count(store: StateStore) -> None:
    bc = BayesClassifier(store, 1)
    assert bc.learn(message_view(make_ctx(OTHER_SPAM)), True)
    original = message_view(make_ctx(ORIGINAL))
    assert bc.learn(original, False)
    delivered = message_view(make_ctx(DELIVERED))
    assert bc.forget(delivered)  # `bayes forget --ham` with the mailbox copy
    got = counts(store, message_keys(delivered).keys)
    assert all(ham < 2 and spam < 2 for spam, ham in got.values()), got
    shared = set(message_keys(original).keys) & set(message_keys(delivered).keys)
    assert all(got[k][1] == 0 for k in shared), got
    st = bc.stats()
    assert (st["spam_learned"], st["ham_learned"]) == (1, 0)

