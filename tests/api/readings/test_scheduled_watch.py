"""The watch over a running scheduled reading, on a clock the test moves: presence, time together, and what
ends it (no-show by who was there last, a party away, a restart nobody came back from, the booked end)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.readings.scheduled_watch import ScheduledWatch
from billing.scheduled_policy import Booking, Ending, Party, Policy, Why

START = datetime(2030, 1, 2, 12, tzinfo=UTC)
BOOKING = Booking(price_cents=1500, starts_at=START, minutes=15)
POLICY = Policy(grace_seconds=60, no_show_seconds=600)
T0 = 1000.0  # the monotonic clock at the booked start


def watch(*, at: float = T0 - 600, **kw: object) -> ScheduledWatch:
    """A watch made ``T0 - at`` seconds before the start (10 minutes by default)."""
    return ScheduledWatch(BOOKING, POLICY, now=at, wall=START + timedelta(seconds=at - T0), **kw)  # type: ignore[arg-type]


def test_a_reader_who_joined_early_for_two_seconds_and_left_is_the_no_show() -> None:
    # The hardening issue: the reader joins 5 minutes early for 2 s and leaves; the client joins and stays.
    w = watch()
    w.presence(Party.READER, True, T0 - 300)
    w.presence(Party.READER, False, T0 - 298)
    w.presence(Party.CLIENT, True, T0 - 60)
    assert w.due(T0 + 599) is None
    assert w.due(T0 + 600) == Ending(Why.NO_SHOW, START + timedelta(seconds=600), party=Party.READER)


def test_a_reader_who_waited_for_a_client_who_never_came_makes_it_the_clients_no_show() -> None:
    w = watch()
    w.presence(Party.READER, True, T0 - 30)
    ending = w.due(T0 + 600)
    assert ending is not None and (ending.why, ending.party) == (Why.NO_SHOW, Party.CLIENT)


def test_a_reader_away_past_the_grace_after_the_start_ends_it_counted_from_when_they_left() -> None:
    w = watch()
    w.presence(Party.CLIENT, True, T0 - 60)
    w.presence(Party.READER, True, T0 - 10)
    w.start(T0 - 10)
    assert w.together() and w.due(T0 + 100) is None
    w.presence(Party.READER, False, T0 + 240)
    assert w.together_seconds(T0 + 300) == 250
    assert w.due(T0 + 299) is None
    ending = w.due(T0 + 300)
    assert ending == Ending(Why.AWAY, START + timedelta(seconds=300), party=Party.READER,
                           given_until=START + timedelta(seconds=240))


def test_a_party_who_leaves_before_the_start_has_the_no_show_window_to_come_back() -> None:
    w = watch()
    w.presence(Party.CLIENT, True, T0 - 300)
    w.presence(Party.READER, True, T0 - 300)
    w.start(T0 - 300)
    w.presence(Party.CLIENT, False, T0 - 290)
    assert w.due(T0 - 200) is None and w.due(T0 + 599) is None
    ending = w.due(T0 + 600)
    assert ending is not None and (ending.why, ending.party) == (Why.AWAY, Party.CLIENT)
    assert ending.given_until == START - timedelta(seconds=290)


def test_a_reading_runs_to_its_booked_end() -> None:
    w = watch()
    for party in Party:
        w.presence(party, True, T0)
    w.start(T0)
    assert w.seconds_left(T0 + 60) == 14 * 60
    ending = w.due(T0 + 900)
    assert ending is not None and ending.why is Why.TIME_UP and w.together_seconds(T0 + 900) == 900


def test_a_resumed_reading_nobody_comes_back_to_ends_as_a_restart_given_until_before_the_outage() -> None:
    outage = START + timedelta(minutes=4)
    w = watch(at=T0 + 300, active=True, resumed=True, together_seconds=240, last_together=outage)
    assert w.due(T0 + 359) is None
    assert w.due(T0 + 360) == Ending(Why.RESTART, START + timedelta(seconds=360), given_until=outage)


def test_a_resumed_reading_only_one_comes_back_to_ends_on_the_other_being_away() -> None:
    outage = START + timedelta(minutes=4)
    w = watch(at=T0 + 300, active=True, resumed=True, together_seconds=240, last_together=outage)
    w.presence(Party.CLIENT, True, T0 + 310)
    ending = w.due(T0 + 360)
    assert ending is not None and (ending.why, ending.party, ending.given_until) == (Why.AWAY, Party.READER, outage)


def test_a_resumed_reading_both_come_back_to_goes_on_and_counts_their_time_together() -> None:
    w = watch(at=T0 + 300, active=True, resumed=True, together_seconds=240,
              last_together=START + timedelta(minutes=4))
    w.presence(Party.CLIENT, True, T0 + 310)
    w.presence(Party.READER, True, T0 + 320)
    assert w.due(T0 + 400) is None and w.together_seconds(T0 + 400) == 240 + 80
    ending = w.due(T0 + 900)
    assert ending is not None and ending.why is Why.TIME_UP


def test_a_booked_reading_resumed_before_anyone_came_gives_them_the_grace_and_then_counts_as_a_restart() -> None:
    w = watch(at=T0 + 590, resumed=True)  # its owner stopped just before the no-show deadline
    assert w.due(T0 + 600) is None
    assert w.due(T0 + 650) == Ending(Why.RESTART, START + timedelta(seconds=650))
    joined = watch(at=T0 + 590, resumed=True)
    joined.presence(Party.CLIENT, True, T0 + 600)
    ending = joined.due(T0 + 650)
    assert ending is not None and (ending.why, ending.party) == (Why.NO_SHOW, Party.READER)


def test_the_party_ending_it_is_told_when_it_was_last_given() -> None:
    w = watch()
    assert w.ending_by(Party.CLIENT, T0 - 100) == Ending(Why.ENDED, START - timedelta(seconds=100), Party.CLIENT)
    for party in Party:
        w.presence(party, True, T0)
    w.start(T0)
    assert w.ending_by(Party.READER, T0 + 60).given_until == START + timedelta(seconds=60)
