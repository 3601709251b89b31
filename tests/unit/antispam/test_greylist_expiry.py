"""Greylisting expiry is measured from the last delivery (as Postgrey and SQLgrey do): a
sender mailing every day stays passed for good, one silent for longer than ``expiry`` is
greylisted again. In scan mode the state machine only reads."""

from __future__ import annotations

import pytest

from gateway_milter.layers.greylist import GreylistSettings, decide
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import Clock

DAY = 86400.0
NET, SENDER, RCPT = "198.51.100.0/24", "a@x.test", "bob@example.com"


def pass_once(st: MemoryStore, c: Clock, s: GreylistSettings, sender: str = SENDER, rcpt: str = RCPT) -> None:
    assert decide(st, NET, sender, rcpt, s, c.t).state == "new"
    c.t += s.delay + 1
    assert decide(st, NET, sender, rcpt, s, c.t).state == "passed"


def test_it_keeps_a_daily_sender_passed_for_60_days() -> None:
    c = Clock(1_800_000_000.0)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=300, retry_window=3600, expiry=36 * int(DAY), auto_pass_after=0)
    pass_once(st, c, s)
    for day in range(60):
        c.t += DAY
        assert decide(st, NET, SENDER, RCPT, s, c.t).state == "known", f"greylisted again on day {day + 1}"


def test_it_greylists_a_sender_silent_for_longer_than_expiry() -> None:
    c = Clock(1_800_000_000.0)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=300, retry_window=3600, expiry=36 * int(DAY), auto_pass_after=0)
    pass_once(st, c, s)
    c.t += 20 * DAY
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "known"
    c.t += 35 * DAY  # 55 days after the pass, but only 35 after the last delivery
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "known"
    c.t += 37 * DAY
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "new"


def test_it_keeps_a_pass_listed_network_while_it_keeps_sending() -> None:
    c = Clock(1_800_000_000.0)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=1, retry_window=100, expiry=10 * int(DAY), auto_pass_after=2)
    pass_once(st, c, s, rcpt="r1@example.com")
    c.t += 5 * DAY
    pass_once(st, c, s, rcpt="r2@example.com")  # the counter's window restarts with each pass
    c.t += 7 * DAY  # 12 days after the first pass
    assert decide(st, NET, "new@x.test", "r9@example.com", s, c.t).state == "network"
    for _ in range(30):
        c.t += 3 * DAY
        assert decide(st, NET, f"s{c.t}@x.test", "r9@example.com", s, c.t).state == "network"
    c.t += 11 * DAY
    assert decide(st, NET, "other@x.test", "r9@example.com", s, c.t).state == "new"


def test_it_refreshes_a_known_triplet_at_most_once_a_day() -> None:
    c = Clock(1_800_000_000.0)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=1, retry_window=100, auto_pass_after=5)
    pass_once(st, c, s)
    before = st.round_trips
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "known"
    assert st.round_trips - before == 2  # network counter, triplet: passed today, no write
    c.t += 86400  # the next day: one refresh of both (the triplet's day, the counter's expiry)
    before = st.round_trips
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "known"
    assert st.round_trips - before == 4
    before = st.round_trips
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "known"
    assert st.round_trips - before == 2


@pytest.mark.parametrize("auto_pass_after", [0, 3])
def test_it_only_reads_when_not_recording(auto_pass_after: int) -> None:
    c = Clock(1_800_000_000.0)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=300, retry_window=3600, auto_pass_after=auto_pass_after)
    assert decide(st, NET, SENDER, RCPT, s, c.t, record=False).state == "new"
    assert st.scan_keys("grey:") == []  # nothing recorded: a second look is still "new"
    assert decide(st, NET, SENDER, RCPT, s, c.t + 400, record=False).state == "new"
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "new"  # the gateway's first attempt
    assert decide(st, NET, SENDER, RCPT, s, c.t + 10, record=False).state == "early"
    assert decide(st, NET, SENDER, RCPT, s, c.t + 400, record=False).state == "passed"
    assert not st.scan_keys("grey:p:")  # a read-only "passed" stores no pass
    c.t += 400
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "passed"
    ttl = st.ttl(st.scan_keys("grey:p:")[0])
    c.t += DAY
    assert decide(st, NET, SENDER, RCPT, s, c.t, record=False).state == "known"
    assert st.ttl(st.scan_keys("grey:p:")[0]) == pytest.approx((ttl or 0) - DAY)  # not refreshed


def test_an_expiry_under_two_days_restarts_with_deliveries_too() -> None:
    c = Clock(1_800_000_000.0)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=60, retry_window=600, expiry=3600, auto_pass_after=0)
    pass_once(st, c, s)
    for n in range(12):  # every 20 minutes for four hours: never greylisted again
        c.t += 1200
        assert decide(st, NET, SENDER, RCPT, s, c.t).state == "known", f"greylisted again after {n + 1} deliveries"
    c.t += 3601  # silent for longer than the expiry
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "new"


def test_a_short_expiry_keeps_a_busy_network_pass_listed() -> None:
    c = Clock(1_800_000_000.0)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=60, retry_window=600, expiry=3600, auto_pass_after=1)
    pass_once(st, c, s)
    for n in range(12):  # other senders of the network, every 20 minutes
        c.t += 1200
        assert decide(st, NET, f"s{n}@x.test", RCPT, s, c.t).state == "network", f"dropped after {n + 1}"


def test_a_retry_in_the_same_millisecond_has_waited_no_less_than_zero() -> None:
    """The first attempt's time is stored to the millisecond below it: rounded to the nearest,
    a retry 0.2 ms later read a negative wait and stayed "early" with no delay configured."""
    c = Clock(1_800_000_000.0006)
    st = MemoryStore(clock=c)
    s = GreylistSettings(delay=0, retry_window=3600, expiry=int(DAY), auto_pass_after=0)
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "new"
    c.t += 0.0002
    assert decide(st, NET, SENDER, RCPT, s, c.t).state == "passed"


def test_a_retry_window_beyond_a_year_is_refused_when_saved() -> None:
    # a key's TTL: Redis refused 10**16 ("value is not an integer or out of range") on every
    # first attempt, the layer failed and greylisting stopped for the domain
    import pytest

    from gateway_milter.layers.base import SettingsError
    from gateway_milter.layers.greylist import GreylistSettings

    with pytest.raises(SettingsError) as e:
        GreylistSettings(retry_window=10**16)
    assert e.value.path == "retry_window"
    assert GreylistSettings(retry_window=365 * 86400).retry_window == 365 * 86400
