"""The availability rules (api/readings/availability.py): weekly hours in the reader's zone, exceptions, and the
offers that follow; cases by hand, then properties over random weeks, exceptions, bookings and zones."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.readings.availability import (
    Availability,
    AvailabilityError,
    DateException,
    Hours,
    is_offered,
    offers,
    overlaps,
    windows,
)

MONDAY = date(2030, 1, 7)  # a Monday
NOW = datetime(2030, 1, 6, 12, 0, tzinfo=UTC)  # the Sunday before, noon UTC


def week(*hours: Hours, zone: str = "Europe/Lisbon", lengths: tuple[int, ...] = (30, 60),
         exceptions: tuple[DateException, ...] = (), notice: timedelta = timedelta(hours=1),
         horizon: timedelta = timedelta(days=28)) -> Availability:
    return Availability(time_zone=zone, lengths=lengths, weekly=hours, exceptions=exceptions, notice=notice,
                        horizon=horizon)


def test_weekly_hours_are_local_time_in_the_readers_zone() -> None:
    # Monday 9:00-10:00 in New York is 14:00-15:00 UTC in January (EST, UTC-5).
    found = offers(week(Hours(0, 540, 600), zone="America/New_York"), 30, now=NOW)
    first_monday = [s for s in found if s.date() == MONDAY]
    assert first_monday == [datetime(2030, 1, 7, 14, 0, tzinfo=UTC), datetime(2030, 1, 7, 14, 15, tzinfo=UTC),
                            datetime(2030, 1, 7, 14, 30, tzinfo=UTC)]


def test_hours_keep_their_local_time_across_a_daylight_saving_change() -> None:
    # Lisbon moves from UTC+0 to UTC+1 on 2030-03-31: Monday 9:00 local is 9:00 UTC before, 8:00 UTC after.
    availability = week(Hours(0, 540, 570), lengths=(30,), horizon=timedelta(days=60))
    found = offers(availability, 30, now=datetime(2030, 3, 20, tzinfo=UTC))
    assert found[:2] == [datetime(2030, 3, 25, 9, 0, tzinfo=UTC), datetime(2030, 4, 1, 8, 0, tzinfo=UTC)]


def test_a_day_off_hours_off_and_extra_hours() -> None:
    off_day = DateException(MONDAY, False)
    off_hours = DateException(MONDAY + timedelta(days=7), False, 600, 660)
    extra = DateException(MONDAY + timedelta(days=1), True, 1200, 1260)
    availability = week(Hours(0, 540, 720), zone="UTC", lengths=(60,), exceptions=(off_day, off_hours, extra))
    found = offers(availability, 60, now=NOW, until=datetime(2030, 1, 15, tzinfo=UTC))
    assert datetime(2030, 1, 7, 9, tzinfo=UTC) not in found  # the day off
    assert datetime(2030, 1, 8, 20, tzinfo=UTC) in found  # the extra hours on Tuesday
    second_monday = [s.hour * 60 + s.minute for s in found if s.date() == MONDAY + timedelta(days=7)]
    assert second_monday == [540, 660]  # 9:00-10:00 and 11:00-12:00 are left around the hour off


def test_offers_respect_notice_horizon_and_taken_time() -> None:
    availability = week(Hours(6, 0, 1440), zone="UTC", lengths=(30,), notice=timedelta(hours=2),
                        horizon=timedelta(hours=6))
    taken = [(datetime(2030, 1, 6, 15, 0, tzinfo=UTC), datetime(2030, 1, 6, 16, 0, tzinfo=UTC))]
    found = offers(availability, 30, now=NOW, taken=taken)
    assert found[0] == NOW + timedelta(hours=2)
    assert found[-1] == NOW + timedelta(hours=6)
    assert not any(overlaps((s, s + timedelta(minutes=30)), taken[0]) for s in found)
    assert datetime(2030, 1, 6, 14, 30, tzinfo=UTC) in found and datetime(2030, 1, 6, 16, 0, tzinfo=UTC) in found


def test_lengths_the_reader_does_not_offer_have_no_offers() -> None:
    assert offers(week(Hours(0, 540, 720), lengths=(60,)), 30, now=NOW) == []


@pytest.mark.parametrize("bad", [
    lambda: Hours(7, 0, 60), lambda: Hours(0, 0, 1450), lambda: Hours(0, 60, 60), lambda: Hours(0, 10, 70),
    lambda: DateException(MONDAY, True), lambda: DateException(MONDAY, False, 60, None),
    lambda: week(zone="Mars/Olympus"), lambda: week(zone="../../etc/passwd"), lambda: week(lengths=(20,)),
])
def test_bad_hours_are_refused(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AvailabilityError):
        bad()


# -- properties ------------------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Lisbon", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/St_Johns", "Asia/Kolkata"]
quarters = st.integers(0, 95)


@st.composite
def hours(draw: st.DrawFn) -> Hours:
    start = draw(quarters)
    return Hours(draw(st.integers(0, 6)), start * 15, draw(st.integers(start + 1, 96)) * 15)


@st.composite
def exceptions(draw: st.DrawFn) -> DateException:
    day = MONDAY + timedelta(days=draw(st.integers(-2, 20)))
    if draw(st.booleans()):
        return DateException(day, False)
    start = draw(quarters)
    return DateException(day, draw(st.booleans()), start * 15, draw(st.integers(start + 1, 96)) * 15)


@st.composite
def availabilities(draw: st.DrawFn) -> Availability:
    return Availability(
        time_zone=draw(st.sampled_from(ZONES)),
        lengths=tuple(sorted(draw(st.sets(st.sampled_from([15, 30, 45, 60]), min_size=1)))),
        weekly=tuple(draw(st.lists(hours(), max_size=8))), exceptions=tuple(draw(st.lists(exceptions(), max_size=4))),
        notice=timedelta(minutes=draw(st.integers(0, 8)) * 15), horizon=timedelta(days=draw(st.integers(1, 14))))


@st.composite
def bookings(draw: st.DrawFn) -> list[tuple[datetime, datetime]]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        start = NOW + timedelta(minutes=draw(st.integers(0, 14 * 96)) * 15)
        out.append((start, start + timedelta(minutes=draw(st.sampled_from([15, 30, 45, 60])))))
    return out


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(availabilities(), bookings(), st.sampled_from([15, 30, 45, 60]))
def test_no_offer_overlaps_taken_time_and_each_fits_in_open_time(availability: Availability,
                                                                taken: list[tuple[datetime, datetime]],
                                                                minutes: int) -> None:
    found = offers(availability, minutes, now=NOW, taken=taken)
    length = timedelta(minutes=minutes)
    open_time = windows(availability, NOW, NOW + availability.horizon + length)
    assert found == sorted(set(found))
    for start in found:
        booked = (start, start + length)
        assert not any(overlaps(booked, t) for t in taken)
        assert any(lo <= booked[0] and booked[1] <= hi for lo, hi in open_time)
        assert NOW + availability.notice <= start <= NOW + availability.horizon
        assert start.minute % 15 == 0 and start.second == 0
        assert is_offered(availability, start, minutes, now=NOW, taken=taken)


@PROPERTY
@given(availabilities(), st.sampled_from([15, 30, 45, 60]), st.data())
def test_booking_an_offer_removes_it_and_every_offer_overlapping_it(availability: Availability, minutes: int,
                                                                   data: st.DataObject) -> None:
    found = offers(availability, minutes, now=NOW)
    if not found:
        return
    chosen = data.draw(st.sampled_from(found))
    booked = (chosen, chosen + timedelta(minutes=minutes))
    for other_length in availability.lengths:
        before = offers(availability, other_length, now=NOW)
        after = offers(availability, other_length, now=NOW, taken=[booked])
        length = timedelta(minutes=other_length)
        assert after == [s for s in before if not overlaps((s, s + length), booked)]
        assert not is_offered(availability, chosen, minutes, now=NOW, taken=[booked])


@PROPERTY
@given(availabilities())
def test_windows_are_sorted_disjoint_and_inside_the_range(availability: Availability) -> None:
    end = NOW + availability.horizon
    found = windows(availability, NOW, end)
    for (a, b), (c, _) in itertools.pairwise(found):
        assert a < b < c
    assert all(NOW <= a < b <= end for a, b in found)
    # a time off all day on every date leaves nothing
    days = {(NOW + timedelta(days=n)).astimezone(availability.zone).date() + timedelta(days=k)
            for n in range(availability.horizon.days + 2) for k in (-1, 0, 1)}
    closed = Availability(time_zone=availability.time_zone, lengths=availability.lengths, weekly=availability.weekly,
                          exceptions=tuple(DateException(d, False) for d in days))
    assert windows(closed, NOW, end) == []
