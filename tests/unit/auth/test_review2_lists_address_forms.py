"""Sender and recipient entries match an address whatever form of its domain the mail uses: a
trailing dot (``x@spam.test.``, an absolute name that delivers to the same domain) and an
internationalised domain in U-labels or A-labels (``bücher.example`` is
``xn--bcher-kva.example``). The patterns matched the text as written, so a blocked sender got
through by adding a dot to its domain, or by writing it the other way round than the entry."""

from __future__ import annotations

import pytest

from gateway_milter.policy.lists import CompiledLists, validate_entry


@pytest.fixture()
def lists() -> CompiledLists:
    return CompiledLists([validate_entry(e, "x") for e in [
        {"list": "block", "kind": "sender", "value": "*@spam.test"},
        {"list": "block", "kind": "sender", "value": "*@bücher.example"},
        {"list": "block", "kind": "sender", "value": "*@xn--mnchen-3ya.example"},
        {"list": "block", "kind": "sender", "value": "*@*.bulk.test"},
        {"list": "block", "kind": "sender", "value": "dot.test."},
        {"list": "block", "kind": "recipient", "value": "closed@example.com"},
        {"list": "block", "kind": "sender", "value": "pest@nuisance.test", "recipient": "bob@example.com"},
    ]])


@pytest.mark.parametrize("address", ["x@spam.test.", "<x@SPAM.test.>", "x@xn--bcher-kva.example",
                                     "x@BÜCHER.example", "x@münchen.example", "x@a.bulk.test.", "x@dot.test"])
def test_a_blocked_sender_matches_in_every_form_of_its_domain(lists: CompiledLists, address: str) -> None:
    assert lists.match_address("block", "sender", address, None) is not None


def test_other_domains_still_do_not_match(lists: CompiledLists) -> None:
    for address in ("x@spam.test.example", "x@notspam.test", "x@bucher.example", "x@bulk.test"):
        assert lists.match_address("block", "sender", address, None) is None


def test_a_recipient_entry_matches_the_recipient_with_a_trailing_dot(lists: CompiledLists) -> None:
    assert lists.match_address("block", "recipient", "closed@example.com.", "example.com") is not None


def test_a_users_own_entry_matches_both_addresses_with_a_trailing_dot(lists: CompiledLists) -> None:
    assert lists.match_user("block", "bob@example.com.", "pest@nuisance.test.") is not None
