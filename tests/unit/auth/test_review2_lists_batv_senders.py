"""Sender entries match an envelope sender that carries a BATV tag (``prvs=TAG=``,
``msprvs1=TAG=``, Barracuda's ``btv1==TAG==``: the sending site's bounce protection, a new tag for
every message) by the address under the tag. They matched the tagged text only, so a user's own
entries, which judge the envelope sender alone, never applied to a site that tags: the user's
block of a pest let its mail through, and the user's allow of a partner never exempted it."""

from __future__ import annotations

import pytest

from gateway_milter.policy.lists import CompiledLists, validate_entry

TAGGED = ["prvs=0123abcdef=pest@nuisance.test", "PRVS=1456789abc=pest@nuisance.test",
          "msprvs1=19876abcdef=pest@nuisance.test", "btv1==0a1b2c3d4e5==pest@nuisance.test"]


@pytest.fixture()
def lists() -> CompiledLists:
    return CompiledLists([validate_entry(e, "x") for e in [
        {"list": "block", "kind": "sender", "value": "pest@nuisance.test", "recipient": "bob@example.com"},
        {"list": "allow", "kind": "sender", "value": "alice@partner.example", "recipient": "bob@example.com"},
        {"list": "block", "kind": "sender", "value": "boss@spam.test"},
        {"list": "block", "kind": "sender", "value": "prvs=*@tagged.test"},
    ]])


@pytest.mark.parametrize("sender", TAGGED)
def test_a_users_block_entry_matches_a_tagged_envelope_sender(lists: CompiledLists, sender: str) -> None:
    assert lists.match_user("block", "bob@example.com", sender) is not None


def test_a_users_allow_entry_matches_a_tagged_envelope_sender(lists: CompiledLists) -> None:
    assert lists.match_user("allow", "bob@example.com", "prvs=0123abcdef=alice@partner.example") is not None


def test_a_block_entry_matches_a_tagged_envelope_sender(lists: CompiledLists) -> None:
    assert lists.match_address("block", "sender", "<prvs=0123abcdef=boss@spam.test>", None) is not None


def test_an_entry_naming_the_tagged_form_still_matches_it(lists: CompiledLists) -> None:
    assert lists.match_address("block", "sender", "prvs=0123abcdef=x@tagged.test", None) is not None


def test_other_addresses_still_do_not_match(lists: CompiledLists) -> None:
    assert lists.match_user("block", "bob@example.com", "prvs=0123abcdef=other@nuisance.test") is None
    assert lists.match_user("block", "carol@example.com", "prvs=0123abcdef=pest@nuisance.test") is None
