"""Greylisting and spam traps as a mail administrator expects them:

- a trap reached through an alias domain is the same trap (it was delivered as ordinary mail);
- a client's spam-trap mark lasts ``ip_ttl`` after its latest hit (it ran out ``ip_ttl`` after
  the first, while the client kept hitting traps);
- a forwarded (SRS) sender's own BATV tag is not part of the triplet (each message of it was a
  new triplet, deferred again);
- exemption entries that never matched (a bare domain, an IPv4-mapped network) or matched every
  bounce (an empty one) are refused when saved, and a wrong delay or expiry names its field."""

from __future__ import annotations

import pytest

from gateway_milter.layers.base import SettingsError
from gateway_milter.layers.greylist import GreylistSettings, decide, normalize_sender
from gateway_milter.layers.spamtrap import SpamTrapSettings, is_trap
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store import set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import Clock, make_ctx, msg, policy

ALIASED = [{"name": "example.com", "aliases": ["example.net"]}]


def _trap_policy(addresses: list[str]) -> PolicySnapshot:
    return policy({"spamtrap": {"addresses": addresses, "train_bayes": False}}, domains=ALIASED)


@pytest.mark.parametrize(("trap", "rcpt"), [("trap@example.com", "trap@example.net"),
                                            ("trap@example.net", "Trap@Example.COM")])
def test_a_trap_matches_through_an_alias_domain(store: MemoryStore, trap: str, rcpt: str) -> None:
    pol = _trap_policy([trap])
    ctx = make_ctx(msg("buy", "cheap pills"), pol, rcpts=(rcpt,))
    res = ctx.layer("spamtrap")
    assert res.has("SPAMTRAP") and res.has("SPAMTRAP_ONLY")
    assert is_trap(rcpt, SpamTrapSettings(addresses=(trap,)), pol)
    assert not is_trap(rcpt, SpamTrapSettings(addresses=(trap,)))  # (no policy: as written only)


def test_an_alias_does_not_make_other_domains_traps(store: MemoryStore) -> None:
    pol = _trap_policy(["trap@example.com"])
    assert not is_trap("trap@example.org", SpamTrapSettings(addresses=("trap@example.com",)), pol)
    assert not is_trap("other@example.net", SpamTrapSettings(addresses=("trap@example.com",)), pol)


def test_the_mark_lasts_ip_ttl_after_the_latest_hit() -> None:
    clock = Clock(1_700_000_000.0)
    t0 = clock.t
    st = MemoryStore(clock)
    set_default_store(st)
    try:
        pol = policy({"spamtrap": {"addresses": ["trap@example.com"], "train_bayes": False, "ip_ttl": 7 * 86400}})

        def send(day: float, rcpt: str) -> list[str]:
            clock.t = t0 + day * 86400
            ctx = make_ctx(msg("buy", "cheap pills"), pol, ip="198.51.100.77", mail_from="s@evil.test",
                           rcpts=(rcpt,))
            return [s.name for s in ctx.layer("spamtrap").symbols]

        send(0, "trap@example.com")
        assert "SPAMTRAP_IP" in send(6, "trap@example.com")  # a second hit 6 days later
        assert st.ttl("trap:ip:198.51.100.77") == pytest.approx(7 * 86400)
        assert "SPAMTRAP_IP" in send(12, "bob@example.com")  # 6 days after the latest hit: still marked
        assert "SPAMTRAP_IP" not in send(13.01, "bob@example.com")  # past ip_ttl after it
    finally:
        set_default_store(None)


def test_a_forwarded_senders_own_batv_tag_is_not_part_of_the_triplet() -> None:
    a = normalize_sender("SRS0=AbCd=QX=origin.example=prvs=0a1b2c3d4e=alice@forwarder.example")
    b = normalize_sender("SRS0=XyZw=QY=origin.example=prvs=0f9e8d7c6b=alice@forwarder.example")
    assert a == b == "srs0=origin.example=alice@forwarder.example"
    c = normalize_sender("SRS1=HhHh=first.example==AbCd=QX=origin.example=prvs=0a1b2c3d4e=alice@second.example")
    assert c == "srs1=first.example==origin.example=alice@second.example"
    # the next message of the sender passes, as it does unforwarded
    st, s = MemoryStore(), GreylistSettings(delay=0)
    assert decide(st, "198.51.100.0/24", a, "bob@example.com", s).state == "new"
    assert decide(st, "198.51.100.0/24", a, "bob@example.com", s).state == "passed"
    assert decide(st, "198.51.100.0/24", b, "bob@example.com", s).state == "known"


@pytest.mark.parametrize(("values", "field"), [
    ({"exempt_senders": ["example.com"]}, "exempt_senders[0]"),
    ({"exempt_senders": ["partner@y.test", ""]}, "exempt_senders[1]"),
    ({"exempt_senders": ["not an address"]}, "exempt_senders[0]"),
    ({"exempt_recipients": ["  "]}, "exempt_recipients[0]"),
    ({"exempt_networks": ["::ffff:203.0.113.0/120"]}, "exempt_networks[0]"),
    ({"delay": -1}, "delay"),
    ({"expiry": 0}, "expiry"),
    ({"delay": 600, "retry_window": 600}, "retry_window"),
])
def test_settings_that_never_did_what_they_say_are_refused(values: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError) as e:
        GreylistSettings(**values)  # type: ignore[arg-type]
    assert e.value.path == field


def test_exemption_entries_of_the_documented_forms_are_kept() -> None:
    s = GreylistSettings(exempt_senders=("partner@y.test", "@y.test", "Partner@Y.Test."),
                         exempt_recipients=("postmaster@example.com", "@example.net"),
                         exempt_networks=("203.0.113.0/24", "2001:db8::/32"))
    assert len(s.exempt_senders) == 3
