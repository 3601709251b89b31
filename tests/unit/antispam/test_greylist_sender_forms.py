"""Senders that change with every message or every day make one triplet: SRS (forwarded mail,
whose hash and day stamp change daily) and VERP numbers (bounce ids), besides BATV tags."""

from __future__ import annotations

from gateway_milter.layers.greylist import GreylistSettings, decide, normalize_sender
from gateway_milter.store.memory import MemoryStore


def test_srs_hash_and_day_stamp_are_not_part_of_the_triplet() -> None:
    monday = normalize_sender("<SRS0=AbCd=QX=origin.example=Alice@forwarder.example>")
    tuesday = normalize_sender("<SRS0=wXyZ=QY=origin.example=Alice@forwarder.example>")
    assert monday == tuesday == "srs0=origin.example=alice@forwarder.example"
    assert normalize_sender("SRS0+x1y2=TT=origin.example=bob@fwd.example") == "srs0=origin.example=bob@fwd.example"
    # a second forwarder: SRS1=HASH=first-forwarder==HASH=TT=domain=local@second
    a = normalize_sender("SRS1=HHHH=first.example==abcd=QX=origin.example=alice@second.example")
    b = normalize_sender("SRS1=GGGG=first.example==efgh=QY=origin.example=alice@second.example")
    assert a == b == "srs1=first.example==origin.example=alice@second.example"
    # not SRS: left alone
    assert normalize_sender("srs0@example.com") == "srs0@example.com"


def test_verp_numbers_are_masked_but_names_with_digits_stay() -> None:
    assert normalize_sender("bounce-4711-17@lists.example") == "bounce-#-#@lists.example"
    assert normalize_sender("bounce-4712-18@lists.example") == "bounce-#-#@lists.example"
    assert normalize_sender("user2024@example.com") == "user2024@example.com"
    assert normalize_sender("prvs=1234abcdef=news-991@x.test") == "news-#@x.test"
    assert normalize_sender("") == ""


def test_a_forwarded_sender_passes_on_the_next_day_after_one_deferral() -> None:
    st, s = MemoryStore(), GreylistSettings(mode="on", delay=60, retry_window=3600, expiry=30 * 86400)
    net, rcpt, t0 = "198.51.100.0/24", "bob@example.com", 1_700_000_000.0
    day1 = normalize_sender("SRS0=AbCd=QX=origin.example=alice@forwarder.example")
    assert decide(st, net, day1, rcpt, s, now=t0).state == "new"
    assert decide(st, net, day1, rcpt, s, now=t0 + 120).state == "passed"
    day2 = normalize_sender("SRS0=ZzZz=QY=origin.example=alice@forwarder.example")
    assert decide(st, net, day2, rcpt, s, now=t0 + 86400).state == "known"


def test_an_address_extension_is_cut_as_postgrey_cuts_it() -> None:
    # a list's bounce address with a tag per message: every message was a new triplet, deferred again
    a = normalize_sender("list+bounce-x7Gq2@lists.example")
    b = normalize_sender("List+bounce-Hh3kP@lists.example")
    assert a == b == "list@lists.example"
    assert normalize_sender("news+4711@x.test") == "news@x.test"
    assert normalize_sender("+leading@x.test") == "+leading@x.test"  # nothing before the '+': kept
    assert normalize_sender("list+tag@x.test", numbers=False) == "list+tag@x.test"  # as written
    st, s = MemoryStore(), GreylistSettings(mode="on", delay=60, retry_window=3600, expiry=30 * 86400)
    net, rcpt, t0 = "198.51.100.0/24", "bob@example.com", 1_700_000_000.0
    assert decide(st, net, a, rcpt, s, now=t0).state == "new"
    assert decide(st, net, a, rcpt, s, now=t0 + 120).state == "passed"
    assert decide(st, net, b, rcpt, s, now=t0 + 3 * 86400).state == "known"
