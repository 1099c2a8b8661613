"""The scheduled rules, every combination: who ends it (client, reader, nobody), how (ended or cancelled,
no-show, away, restart, booked end), when (days before, hours before, after the start, at the end), and
whether it was ever under way; plus properties over random times and prices."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.scheduled_policy import (
    Booking,
    Ending,
    Outcome,
    Party,
    Policy,
    Why,
    away_deadline,
    cancellation_refund,
    no_show_deadline,
    no_show_party,
    not_given_refund,
    outcome,
)

START = datetime(2030, 1, 2, 12, tzinfo=UTC)
BOOKING = Booking(price_cents=1500, starts_at=START, minutes=15)  # 100 cents a booked minute
POLICY = Policy(cancel_full_refund_hours=24, late_cancel_refund_percent=40, grace_seconds=60, no_show_seconds=600)
MIN = timedelta(minutes=1)

# When, relative to the start; and the moment the two were last together (None: never under way).
TIMES = {"two days before": START - timedelta(days=2), "an hour before": START - timedelta(hours=1),
         "five minutes in": START + 5 * MIN, "at the end": START + 15 * MIN}


def expected(why: Why, party: Party | None, at: datetime, together_until: datetime | None) -> Outcome:
    """The money rules of docs/design.md, written out case by case (the table the module must agree with)."""
    if why is Why.TIME_UP:
        return Outcome("time_up", 0, free_slot=False)
    if why is Why.RESTART:
        if together_until is None or together_until <= START:
            return Outcome("server_restart", 1500, free_slot=True)
        return Outcome("server_restart", 100 * max(0, (START + 15 * MIN - together_until) // MIN), free_slot=True)
    if party is Party.CLIENT:
        if why is Why.ENDED and (at < START or together_until is None):
            refund = 1500 if at <= START - timedelta(hours=24) else 1500 * 40 // 100
            return Outcome("cancelled_by_client", refund, free_slot=True, cancellation=True)
        return Outcome({Why.ENDED: "ended_by_client", Why.NO_SHOW: "client_no_show",
                        Why.AWAY: "grace_expired"}[why], 0, free_slot=False)
    if why is Why.NO_SHOW:
        return Outcome("reader_no_show", 1500, free_slot=True)
    reason = "ended_by_reader" if why is Why.ENDED else "grace_expired"
    if at < START or together_until is None or together_until <= START:
        return Outcome(reason, 1500, free_slot=True)
    return Outcome(reason, 100 * max(0, (START + 15 * MIN - together_until) // MIN), free_slot=True)


CASES = [
    (why, party, when, together)
    for why, party in itertools.chain(itertools.product((Why.ENDED, Why.NO_SHOW, Why.AWAY), Party),
                                      [(Why.RESTART, None), (Why.TIME_UP, None)])
    for when in TIMES
    for together in (None, "until now")
]


@pytest.mark.parametrize(("why", "party", "when", "together"), CASES,
                         ids=[f"{w.value}-{p.value if p else 'nobody'}-{t}-{g or 'never'}" for w, p, t, g in CASES])
def test_every_ending_gives_back_what_the_rules_say(why: Why, party: Party | None, when: str,
                                                    together: str | None) -> None:
    at = TIMES[when]
    together_until = at if together else None
    got = outcome(BOOKING, Ending(why, at, party=party, given_until=together_until), POLICY)
    assert got == expected(why, party, at, together_until)


def test_the_reader_ending_before_the_start_gives_everything_back_and_opens_the_slot() -> None:
    for at in (START - timedelta(days=3), START - timedelta(seconds=1)):
        for together in (None, at):
            got = outcome(BOOKING, Ending(Why.ENDED, at, Party.READER, together), POLICY)
            assert got == Outcome("ended_by_reader", 1500, free_slot=True)


def test_the_reader_ending_after_the_start_gives_back_the_whole_minutes_not_given() -> None:
    def ended_at(moment: datetime) -> int:
        return outcome(BOOKING, Ending(Why.ENDED, moment, Party.READER, moment), POLICY).refund_cents

    assert ended_at(START) == 1500
    assert ended_at(START + timedelta(seconds=1)) == 1400  # a started minute counts as given
    assert ended_at(START + 5 * MIN) == 1000
    assert ended_at(START + 14 * MIN + timedelta(seconds=59)) == 0
    # Gone for a while before ending it: counted from when the two were last together.
    assert outcome(BOOKING, Ending(Why.ENDED, START + 9 * MIN, Party.READER, START + 3 * MIN),
                   POLICY).refund_cents == 1200


def test_the_client_ending_before_the_start_is_a_cancellation_by_the_usual_policy() -> None:
    strict = Policy(late_cancel_refund_percent=0)
    early = outcome(BOOKING, Ending(Why.ENDED, START - timedelta(hours=30), Party.CLIENT), strict)
    late = outcome(BOOKING, Ending(Why.ENDED, START - timedelta(minutes=5), Party.CLIENT, START - 3 * MIN), strict)
    assert early == Outcome("cancelled_by_client", 1500, free_slot=True, cancellation=True)
    assert late == Outcome("cancelled_by_client", 0, free_slot=True, cancellation=True)
    assert cancellation_refund(1500, START, START - timedelta(hours=24), strict) == 1500
    assert cancellation_refund(1500, START, START - timedelta(hours=24) + timedelta(seconds=1), strict) == 0


def test_the_client_ending_a_reading_under_way_after_the_start_gets_nothing_back() -> None:
    got = outcome(BOOKING, Ending(Why.ENDED, START + 5 * MIN, Party.CLIENT, START + 5 * MIN), POLICY)
    assert got == Outcome("ended_by_client", 0, free_slot=False)


def test_a_restart_it_could_not_resume_from_refunds_what_was_not_given() -> None:
    assert outcome(BOOKING, Ending(Why.RESTART, START + 10 * MIN), POLICY).refund_cents == 1500  # never under way
    before = Ending(Why.RESTART, START + MIN, given_until=START - 2 * MIN)  # under way early, then the restart
    assert outcome(BOOKING, before, POLICY).refund_cents == 1500
    during = Ending(Why.RESTART, START + 10 * MIN, given_until=START + 4 * MIN + timedelta(seconds=20))
    assert outcome(BOOKING, during, POLICY) == Outcome("server_restart", 1000, free_slot=True)


def test_an_ending_about_a_party_needs_the_party() -> None:
    with pytest.raises(ValueError, match="party"):
        outcome(BOOKING, Ending(Why.NO_SHOW, START), POLICY)


@pytest.mark.parametrize(("reader_seen", "client_seen", "missed"), [
    (None, None, Party.READER),  # nobody came: the reader missed it
    (None, START, Party.READER),  # the client waited, the reader never came
    (START, None, Party.CLIENT),  # the reader waited, the client never came
    # The hardening issue: the reader came 5 minutes early for 2 s; the client joined and stayed.
    (START - 5 * MIN + timedelta(seconds=2), START + 10 * MIN, Party.READER),
    (START + 10 * MIN, START - 5 * MIN, Party.CLIENT),  # the client left early; the reader stayed
    (START + 3 * MIN, START + 3 * MIN, Party.READER),  # a tie is the reader's to answer for
])
def test_the_party_seen_last_waited_and_the_other_missed_it(reader_seen: datetime | None,
                                                             client_seen: datetime | None, missed: Party) -> None:
    assert no_show_party(reader_seen, client_seen) is missed


def test_the_no_show_deadline_is_the_window_after_the_start_and_a_resumed_reading_gets_the_grace() -> None:
    assert no_show_deadline(BOOKING, POLICY) == START + 10 * MIN
    short = Booking(1500, START, 15)
    assert no_show_deadline(short, Policy(no_show_seconds=3600)) == START + 15 * MIN  # never past the end
    assert no_show_deadline(BOOKING, POLICY, resumed_at=START + 12 * MIN) == START + 13 * MIN
    assert no_show_deadline(BOOKING, POLICY, resumed_at=START - 20 * MIN) == START + 10 * MIN


def test_a_party_away_once_it_is_under_way_has_the_grace_and_one_away_at_the_start_the_window() -> None:
    assert away_deadline(BOOKING, POLICY, START + 2 * MIN) == START + 3 * MIN
    assert away_deadline(BOOKING, POLICY, START - 4 * MIN) == START + 10 * MIN
    assert away_deadline(BOOKING, Policy(grace_seconds=3600, no_show_seconds=600), START - MIN) == START + 59 * MIN


moments = st.integers(min_value=-3 * 24 * 3600, max_value=2 * 3600).map(lambda s: START + timedelta(seconds=s))
bookings = st.builds(Booking, price_cents=st.integers(0, 10**7), starts_at=st.just(START),
                     minutes=st.sampled_from((15, 30, 45, 60)))
policies = st.builds(Policy, cancel_full_refund_hours=st.integers(0, 720),
                     late_cancel_refund_percent=st.integers(0, 100), grace_seconds=st.integers(1, 3600),
                     no_show_seconds=st.integers(60, 86_400))


@given(bookings, policies, st.sampled_from(list(Why)), st.sampled_from(list(Party)), moments,
       st.one_of(st.none(), moments))
def test_a_refund_is_never_negative_nor_more_than_was_paid(booking: Booking, policy: Policy, why: Why, party: Party,
                                                          at: datetime, given_until: datetime | None) -> None:
    got = outcome(booking, Ending(why, at, party, given_until), policy)
    assert 0 <= got.refund_cents <= booking.price_cents
    if got.cancellation:
        assert party is Party.CLIENT and why is Why.ENDED


@given(bookings, policies, st.sampled_from([Why.ENDED, Why.AWAY, Why.NO_SHOW]), moments, st.one_of(st.none(), moments))
def test_the_reader_at_fault_never_gives_back_less_than_the_client_at_fault(
        booking: Booking, policy: Policy, why: Why, at: datetime, given_until: datetime | None) -> None:
    reader = outcome(booking, Ending(why, at, Party.READER, given_until), policy)
    client = outcome(booking, Ending(why, at, Party.CLIENT, given_until), policy)
    assert reader.refund_cents >= client.refund_cents and reader.free_slot


@given(bookings, moments, moments)
def test_the_later_it_stopped_being_given_the_less_comes_back(booking: Booking, a: datetime, b: datetime) -> None:
    early, late = sorted((a, b))
    assert not_given_refund(booking, early) >= not_given_refund(booking, late)
