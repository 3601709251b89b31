"""Barracuda's BATV tags (``btv1==<tag>==user@domain``, '==' as the delimiter, unlike the
prvs= draft) change with every message like prvs= tags: greylisting must strip them too, or
every message of such a sender is a new triplet, deferred again however often it passed."""

from __future__ import annotations

from gateway_milter.layers.greylist import GreylistSettings, decide, normalize_sender
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import Clock


def test_it_strips_a_barracuda_btv1_tag() -> None:
    assert normalize_sender("<btv1==0777abbcc85==TCWM179387@ipen.br>") == "tcwm179387@ipen.br"


def test_it_keeps_a_barracuda_sender_passed_across_messages() -> None:
    c = Clock(1_800_000_000.0)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=300, retry_window=3600, auto_pass_after=0)
    first = normalize_sender("btv1==34826e458e2==ryan@dynetics.example")
    assert decide(st, "198.51.100.0/24", first, "bob@example.com", s, c.t).state == "new"
    c.t += 301
    assert decide(st, "198.51.100.0/24", first, "bob@example.com", s, c.t).state == "passed"
    c.t += 600
    nxt = normalize_sender("btv1==474900d718c==ryan@dynetics.example")  # the next message's tag
    assert decide(st, "198.51.100.0/24", nxt, "bob@example.com", s, c.t).state == "known"
