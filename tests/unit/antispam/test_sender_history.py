"""Sender history: the From address with the network it came from, learned with the message,
read in Bayes' round trip, outside the chi-square combining; BAYES_SENDER_* symbols; their
points in the total (docs/decisions/0055-sender-history.md)."""

from __future__ import annotations

import random
from pathlib import Path

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.saview import message_view
from gateway_milter.antispam.tokenizer import hashed, sender_key, tokens
from gateway_milter.layers.bayes import sender_symbol
from gateway_milter.net.networks import relay_network
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy
from tests.unit.antispam.test_bayes import HAM_WORDS, SPAM_WORDS, sample, trained

RECEIVED = ("Received: from mail.shop.test (mail.shop.test [{ip}]) by mx.example.com (Postfix) with ESMTP "
            "id ABC; Sat, 28 Nov 2026 10:00:00 +0000\r\n")


def from_sender(raw: bytes, sender: str = "News@Shop.test", ip: str = "198.51.100.7") -> bytes:
    """``raw`` (made by helpers.msg) as sent by ``sender`` through a relay at ``ip``."""
    return RECEIVED.format(ip=ip).encode() + raw.replace(b"Alice <alice@sender.test>", f'"Shop" <{sender}>'.encode())


def test_the_key_is_the_from_address_and_the_network_of_the_first_untrusted_relay() -> None:
    def key(raw: bytes) -> str | None:
        return sender_key(message_view(make_ctx(raw)))

    assert key(from_sender(msg())) == "sender-net:news@shop.test|198.51.0.0/16"
    assert key(from_sender(msg(), ip="198.51.7.1")) == key(from_sender(msg()))  # the same /16
    assert key(from_sender(msg(), ip="203.0.113.7")) != key(from_sender(msg()))  # a forger's own network
    assert key(from_sender(msg(), ip="IPv6:2001:db8:aa:bb::7")) == "sender-net:news@shop.test|2001:db8:aa::/48"
    assert key(msg()) == "sender-net:alice@sender.test|local"  # no Received header: no untrusted relay
    assert key(msg().replace(b"Alice <alice@sender.test>", b"undisclosed")) is None  # no address, no key
    assert relay_network("unknown", 16, 48) == "?"  # a relay record without an address


def test_it_is_learned_forgotten_and_moved_with_the_message(store: MemoryStore) -> None:
    bc = BayesClassifier(store, 1)
    view = message_view(make_ctx(from_sender(msg("deal", "cheap pills here"))))
    field = "t" + hashed([sender_key(view) or ""])[0]

    def counts() -> tuple[int, int]:
        (v,) = store.counters([("bayes2:global", [field])])[0]
        return v >> 32, v & 0xFFFFFFFF

    bc.learn(view, True)
    assert counts() == (1, 0)
    bc.learn(view, True)  # idempotent
    assert counts() == (1, 0)
    bc.learn(view, False)  # a correction moves it
    assert counts() == (0, 1)
    bc.forget(view)
    assert counts() == (0, 0)


def test_its_counts_come_back_in_the_same_round_trip_and_leave_the_probability_alone(store: MemoryStore) -> None:
    bc = trained(store, n=30, min_learned=20)
    rnd = random.Random(11)
    for i in range(3):
        bc.learn(message_view(make_ctx(from_sender(sample(SPAM_WORDS, 100 + i, rnd)))), True)
    view = message_view(make_ctx(from_sender(sample(SPAM_WORDS, 200, rnd))))
    before = store.round_trips
    res = bc.classify(view)
    assert store.round_trips - before == 1
    assert (res.sender_spam, res.sender_ham) == (3, 0)
    assert res.tokens == len(tokens(view))  # the sender field is not one of the features
    # without the sender's field in the store the probability is the same to the last digit
    sender_field = "t" + hashed([sender_key(view) or ""])[0]
    store.add_counters([("bayes2:global", {sender_field: -(3 << 32)})])
    again = bc.classify(view)
    assert (again.sender_spam, again.sender_ham) == (0, 0)
    assert (again.probability, again.logodds) == (res.probability, res.logodds)


def test_the_symbol_says_only_spam_or_only_ham() -> None:
    assert sender_symbol(2, 0) == "BAYES_SENDER_SPAM"
    assert sender_symbol(0, 5) == "BAYES_SENDER_HAM"
    assert sender_symbol(1, 1) is None
    assert sender_symbol(0, 0) is None


def _layer_symbols(raw: bytes, settings: dict[str, object] | None = None) -> dict[str, float]:
    pol = policy({"bayes": {"min_learned": 20, **(settings or {})}})
    return {s.name: s.score for s in make_ctx(raw, pol).layer("bayes").symbols}


def test_the_layer_names_a_sender_learned_as_ham_or_as_spam(store: MemoryStore) -> None:
    bc = trained(store, n=30, min_learned=20)
    rnd = random.Random(12)
    for i in range(2):
        bc.learn(message_view(make_ctx(from_sender(sample(HAM_WORDS, 300 + i, rnd), "friend@shop.test"))), False)
        bc.learn(message_view(make_ctx(from_sender(sample(SPAM_WORDS, 400 + i, rnd), "deals@shop.test"))), True)
    friend = from_sender(sample(SPAM_WORDS, 500, rnd), "friend@shop.test")  # spammy words, known sender
    assert _layer_symbols(friend)["BAYES_SENDER_HAM"] == -1.0
    assert "BAYES_SENDER_HAM" not in _layer_symbols(friend, {"sender_history": False})
    assert _layer_symbols(friend, {"scores": {"BAYES_SENDER_HAM": -2.5}})["BAYES_SENDER_HAM"] == -2.5
    deals = from_sender(sample(HAM_WORDS, 501, rnd), "deals@shop.test")
    assert _layer_symbols(deals)["BAYES_SENDER_SPAM"] == 1.0
    # the same From from another network is not that sender
    forged = from_sender(sample(SPAM_WORDS, 502, rnd), "friend@shop.test", ip="203.0.113.9")
    assert not {"BAYES_SENDER_HAM", "BAYES_SENDER_SPAM"} & set(_layer_symbols(forged))


def test_a_known_senders_points_come_off_after_the_bayes_cap(tmp_path: Path, store: MemoryStore) -> None:
    bc = trained(store, n=30, min_learned=20)
    rnd = random.Random(13)
    for i in range(2):
        bc.learn(message_view(make_ctx(from_sender(sample(HAM_WORDS, 600 + i, rnd), "friend@shop.test"))), False)
    scores = tmp_path / "fitted.cf"
    scores.write_text("bayes_logodds 1 80\nscore BAYES_99 0 0 2 2\nscore BAYES_999 0 0 2 2\n")
    doc = {"bayes": {"min_learned": 20}, "rules": {"include_default": False},
           "scoring": {"layers": ["bayes"], "score_file": str(scores)}}
    res = make_ctx(from_sender(sample(SPAM_WORDS, 700, rnd), "friend@shop.test"), policy(doc)).layer("scoring")
    assert res.fact("bayes_uncapped") > 7.0  # (the log-odds alone would pass the cap)
    assert res.fact("parts") == {"bayes": 6.0}  # 7 points at the cap, then BAYES_SENDER_HAM's -1
    unknown = make_ctx(from_sender(sample(SPAM_WORDS, 701, rnd), "stranger@shop.test"), policy(doc)).layer("scoring")
    assert unknown.fact("parts") == {"bayes": 7.0}
    # a score set by hand for the sender symbol leaves the bands' fitted log-odds part alone
    doc["bayes"]["scores"] = {"BAYES_SENDER_HAM": -2.5}  # type: ignore[index]
    res = make_ctx(from_sender(sample(SPAM_WORDS, 702, rnd), "friend@shop.test"), policy(doc)).layer("scoring")
    assert res.fact("parts") == {"bayes": 4.5}  # 7 at the cap, then -2.5 (the bands alone: 2 + 2 - 2.5)
