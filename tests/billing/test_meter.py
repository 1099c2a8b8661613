"""The meter, as a specification: simulated connect/disconnect timelines and exactly what each one costs."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.meter import (
    ChargeMinute,
    Decision,
    End,
    Meter,
    Pause,
    Refund,
    Resume,
    Warn,
    billed_seconds,
    net_cents,
    prorated_refund,
)


def charges(decisions: list[Decision]) -> list[ChargeMinute]:
    return [d for d in decisions if isinstance(d, ChargeMinute)]


def started(rate: int = 100, balance: int = 10_000, at: float = 0.0, **kw: float) -> Meter:
    meter = Meter(rate_cents=rate, balance_cents=balance, **kw)  # type: ignore[arg-type]
    meter.connected("client", at)
    meter.connected("reader", at)
    return meter


def run_ticks(meter: Meter, start: float, stop: float, step: float = 1.0) -> list[Decision]:
    out: list[Decision] = []
    t = start
    while t <= stop + 1e-9:
        out += meter.tick(t)
        t += step
    return out


# -- starting and charging -------------------------------------------------------------------------------

def test_nothing_is_billed_until_both_participants_are_connected() -> None:
    meter = Meter(rate_cents=100, balance_cents=1000)
    assert meter.connected("client", 0) == []
    assert run_ticks(meter, 1, 300) == []
    assert meter.billable_seconds(300) == 0
    assert not meter.started


def test_first_minute_is_charged_the_moment_both_are_connected() -> None:
    meter = Meter(rate_cents=250, balance_cents=1000)
    meter.connected("reader", 3)
    assert meter.connected("client", 5) == [Resume(5), ChargeMinute(0, 250)]
    assert meter.running and meter.minutes_charged == 1 and meter.charged_cents == 250


def test_each_minute_is_charged_at_its_start() -> None:
    meter = started(rate=100, balance=10_000)
    assert run_ticks(meter, 1, 59) == []
    assert meter.tick(60) == [ChargeMinute(1, 100)]
    assert run_ticks(meter, 61, 119) == []
    assert meter.tick(120) == [ChargeMinute(2, 100)]
    assert meter.minutes_charged == 3


def test_a_late_tick_charges_every_minute_that_has_started() -> None:
    meter = started(rate=100, balance=10_000)
    assert meter.tick(185) == [ChargeMinute(1, 100), ChargeMinute(2, 100), ChargeMinute(3, 100)]


def test_minute_is_not_charged_while_client_disconnected() -> None:
    meter = started(rate=100, balance=10_000)
    assert meter.disconnected("client", 30) == [Pause(30)]
    assert run_ticks(meter, 31, 80) == []  # wall clock passes minute 1, billable time does not
    assert meter.billable_seconds(80) == 30
    assert meter.connected("client", 81) == [Resume(81)]
    assert run_ticks(meter, 82, 110) == []
    assert meter.tick(111) == [ChargeMinute(1, 100)]  # 30 s + 30 s of billable time


def test_minute_is_not_charged_while_reader_disconnected() -> None:
    meter = started(rate=100, balance=10_000)
    meter.disconnected("reader", 10)
    assert run_ticks(meter, 11, 59) == []
    assert meter.minutes_charged == 1


def test_disconnect_exactly_on_a_minute_boundary_does_not_charge_the_next_minute() -> None:
    meter = started(rate=100, balance=10_000)
    assert meter.disconnected("client", 60) == [Pause(60)]
    assert meter.minutes_charged == 1
    assert meter.finish(70, "ended_by_client") == [Refund(0, 0), End("ended_by_client")]
    assert meter.charged_cents == 100


def test_disconnect_after_a_missed_tick_charges_the_time_already_used() -> None:
    meter = started(rate=100, balance=10_000)
    assert meter.disconnected("client", 60.4) == [ChargeMinute(1, 100), Pause(60.4)]


def test_reconnecting_on_a_paid_boundary_charges_the_next_minute_at_once() -> None:
    meter = started(rate=100, balance=10_000)
    meter.disconnected("client", 60)
    assert meter.connected("client", 70) == [Resume(70), ChargeMinute(1, 100)]


def test_duplicate_events_change_nothing() -> None:
    meter = started(rate=100, balance=10_000)
    assert meter.connected("client", 5) == []
    assert meter.disconnected("reader", 10) == [Pause(10)]
    assert meter.disconnected("reader", 12) == []
    assert meter.billable_seconds(20) == 10


# -- ending ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rate", "seconds", "refund"), [
    (100, 30, 50),     # half a minute unused
    (100, 60, 0),      # the whole minute used
    (100, 0.2, 98),    # a started second is a used second: 59 unused seconds, 98.33 rounded down
    (199, 70.2, 162),  # 10.2 s of minute 2 used -> 11 s; 49 s unused of 199 = 162.5 -> 162
    (1, 1, 0),         # 59/60 of a cent rounds down to 0
    (7, 119.9999999, 0),
])
def test_finish_refunds_the_unused_part_of_the_last_minute_to_the_second(rate: int, seconds: float,
                                                                         refund: int) -> None:
    meter = started(rate=rate, balance=100_000)
    out = meter.finish(seconds, "ended_by_reader")
    assert out[-2:] == [Refund(refund, meter.minutes_charged - 1), End("ended_by_reader")]
    assert meter.charged_cents == net_cents(rate, seconds)
    assert meter.ended and meter.end_reason == "ended_by_reader"


def test_finish_bills_time_used_since_the_last_tick() -> None:
    meter = started(rate=60, balance=10_000)
    assert meter.finish(61, "ended_by_client") == [ChargeMinute(1, 60), Refund(59, 1), End("ended_by_client")]
    assert meter.charged_cents == 61


def test_finish_before_anyone_paid_refunds_nothing() -> None:
    meter = Meter(rate_cents=100, balance_cents=1000)
    meter.connected("client", 0)
    assert meter.finish(30, "cancelled") == [End("cancelled")]
    assert meter.charged_cents == 0


def test_participant_away_longer_than_grace_ends_the_reading() -> None:
    meter = started(rate=120, balance=10_000, grace_seconds=60)
    meter.disconnected("reader", 45)
    assert run_ticks(meter, 46, 104) == []
    assert meter.tick(105) == [Refund(30, 0), End("grace_expired")]  # 45 s used: 15 s of 120/min back
    assert meter.charged_cents == 90


def test_coming_back_within_grace_keeps_the_reading_going() -> None:
    meter = started(rate=100, balance=10_000, grace_seconds=60)
    meter.disconnected("client", 10)
    run_ticks(meter, 11, 69)
    meter.connected("client", 69.5)
    assert run_ticks(meter, 70, 200) == [ChargeMinute(1, 100), ChargeMinute(2, 100)]
    assert not meter.ended


def test_grace_does_not_run_before_the_reading_starts() -> None:
    meter = Meter(rate_cents=100, balance_cents=1000, grace_seconds=10)
    meter.connected("client", 0)
    meter.disconnected("client", 1)
    assert run_ticks(meter, 2, 100) == []
    assert not meter.ended


def test_events_after_the_end_are_ignored() -> None:
    meter = started()
    meter.finish(10, "ended_by_client")
    assert meter.tick(100) == meter.connected("client", 101) == meter.finish(102, "again") == []
    assert meter.funds_added(5000, 103) == meter.charge_failed(104) == []
    assert meter.seconds_left(105) == 0


# -- running out of money --------------------------------------------------------------------------------

def test_reading_ends_when_the_paid_time_runs_out() -> None:
    meter = started(rate=100, balance=250)  # pays minutes 0 and 1, 50 cents stay in the wallet
    out = run_ticks(meter, 1, 130)
    assert charges(out) == [ChargeMinute(1, 100)]
    assert out[-2:] == [Refund(0, 1), End("balance_exhausted")]
    assert meter.billable_seconds(130) == 120  # never past what was paid
    assert meter.charged_cents == 200 and meter.balance_cents == 50


def test_late_tick_never_bills_past_the_paid_time() -> None:
    meter = started(rate=100, balance=100)
    assert meter.tick(75) == [Refund(0, 0), End("balance_exhausted")]
    assert meter.billable_seconds(75) == 60


def test_client_is_warned_a_minute_ahead_when_the_balance_wont_cover_the_next_minute() -> None:
    meter = started(rate=100, balance=300)  # minutes 0, 1, 2: time runs out at 180 s
    out = run_ticks(meter, 1, 119)
    warns = [d for d in out if isinstance(d, Warn)]
    assert len(warns) == 1
    at = next(t for t in range(1, 120) if meter_at_warn_time(t, rate=100, balance=300))
    assert 180 - at >= 60 and warns[0].seconds_left == 180 - at


def meter_at_warn_time(t: int, *, rate: int, balance: int) -> bool:
    meter = started(rate=rate, balance=balance)
    return any(isinstance(d, Warn) for d in run_ticks(meter, 1, t))


def test_warning_is_given_once_per_shortfall() -> None:
    meter = started(rate=100, balance=300)
    out = run_ticks(meter, 1, 200)
    assert sum(isinstance(d, Warn) for d in out) == 1


def test_a_balance_covering_less_than_the_warning_warns_at_the_start() -> None:
    meter = Meter(rate_cents=100, balance_cents=100)
    meter.connected("client", 0)
    assert meter.connected("reader", 0) == [Resume(0), ChargeMinute(0, 100), Warn(60.0)]


def test_funds_added_in_time_keep_the_reading_going_and_rearm_the_warning() -> None:
    meter = started(rate=100, balance=200)
    out = run_ticks(meter, 1, 100)
    assert sum(isinstance(d, Warn) for d in out) == 1
    assert meter.funds_added(500, 100.5) == []
    out = run_ticks(meter, 101, 430)
    assert charges(out) == [ChargeMinute(i, 100) for i in range(2, 7)]
    assert sum(isinstance(d, Warn) for d in out) == 1  # the new shortfall is warned again
    assert out[-1] == End("balance_exhausted")
    assert meter.billable_seconds(430) == 420  # 7 minutes paid: 0..6


def test_funds_added_during_the_last_paid_minute_still_count() -> None:
    meter = started(rate=100, balance=100)  # warned at the start: only minute 0 is paid
    run_ticks(meter, 1, 59)
    assert meter.funds_added(100, 59.5) == []  # still short of the warning horizon: the same shortfall
    assert meter.tick(60) == [ChargeMinute(1, 100)]
    assert run_ticks(meter, 61, 120)[-1] == End("balance_exhausted")


def test_a_failed_charge_takes_the_minute_back_and_ends_the_reading() -> None:
    meter = started(rate=100, balance=10_000)
    assert meter.tick(60) == [ChargeMinute(1, 100)]
    # The ledger said no (the wallet was spent elsewhere): minute 1 never happened.
    assert meter.charge_failed(60.3) == [Refund(0, 0), End("balance_exhausted")]
    assert meter.minutes_charged == 1 and meter.charged_cents == 100
    assert meter.billable_seconds(61) == 60


def test_a_failed_first_minute_ends_without_charge() -> None:
    meter = Meter(rate_cents=100, balance_cents=100)
    meter.connected("client", 0)
    meter.connected("reader", 0)
    assert meter.charge_failed(0.1) == [End("balance_exhausted")]
    assert meter.charged_cents == 0 and meter.billable_seconds(5) == 0


def test_free_readings_charge_zero_cent_minutes_and_never_run_out() -> None:
    meter = started(rate=0, balance=0)
    out = run_ticks(meter, 1, 600)
    assert charges(out) == [ChargeMinute(i, 0) for i in range(1, 11)]
    assert not any(isinstance(d, Warn | End) for d in out)
    assert meter.seconds_left(600) == math.inf


# -- views and restore -----------------------------------------------------------------------------------

def test_seconds_left_counts_the_paid_minute_and_what_the_balance_covers() -> None:
    meter = started(rate=100, balance=350)  # minute 0 paid; 250 left covers 2 more
    assert meter.seconds_left(20) == 40 + 120
    meter.disconnected("client", 20)
    assert meter.seconds_left(500) == 40 + 120


def test_a_restored_meter_continues_its_minutes_and_its_grace_runs_from_the_first_call() -> None:
    meter = Meter(rate_cents=100, balance_cents=1000, billable_seconds=90.0, minutes_charged=2,
                  grace_seconds=30)
    assert meter.started and meter.charged_cents == 200
    assert meter.tick(1000) == []
    meter.connected("client", 1010)
    assert meter.connected("reader", 1011) == [Resume(1011)]
    assert meter.tick(1041) == [ChargeMinute(2, 100)]
    gone = Meter(rate_cents=100, balance_cents=1000, billable_seconds=90.0, minutes_charged=2, grace_seconds=30)
    gone.tick(500)
    assert gone.tick(530) == [Refund(50, 1), End("grace_expired")]


def test_a_meter_restored_before_anything_was_billed_still_counts_as_started() -> None:
    # A reading adopted right after it started (nothing billed yet): its parties have the grace to come back.
    gone = Meter(rate_cents=100, balance_cents=1000, grace_seconds=30, restored=True)
    assert gone.started and gone.tick(0) == []
    assert gone.tick(30) == [End("grace_expired")]
    back = Meter(rate_cents=100, balance_cents=1000, grace_seconds=30, restored=True)
    back.tick(0)
    assert back.connected("client", 10) == [] and back.connected("reader", 20) == [Resume(20), ChargeMinute(0, 100)]


def test_time_going_backwards_counts_as_now() -> None:
    meter = started(rate=100, balance=1000)
    meter.tick(30)
    assert meter.disconnected("client", 20) == [Pause(30)]
    assert meter.billable_seconds(40) == 30


def test_unknown_participants_and_bad_amounts_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        Meter(rate_cents=-1, balance_cents=0)
    meter = Meter(rate_cents=1, balance_cents=0)
    with pytest.raises(ValueError):
        meter.connected("viewer", 0)
    with pytest.raises(ValueError):
        meter.funds_added(-5, 0)
    with pytest.raises(ValueError):
        meter.charge_failed(0)


# -- the rounding rule -----------------------------------------------------------------------------------

@given(rate=st.integers(0, 100_000), seconds=st.floats(0, 10 * 3600, allow_nan=False))
def test_charges_minus_refund_is_the_rate_times_billed_seconds_rounded_up_to_the_cent(rate: int,
                                                                                      seconds: float) -> None:
    minutes = billed_seconds(seconds) // 60 + 1
    refund = prorated_refund(rate, seconds, minutes)
    assert 0 <= refund <= rate
    assert minutes * rate - refund == net_cents(rate, seconds) == math.ceil(rate * billed_seconds(seconds) / 60)
    # The refund is never worth more than the unused time: no cent is created.
    assert refund * 60 <= rate * (minutes * 60 - seconds) + 1e-6 * rate


# -- random timelines ------------------------------------------------------------------------------------

EVENTS = st.one_of(
    st.tuples(st.sampled_from(["connect", "disconnect"]), st.sampled_from(["client", "reader"])),
    st.tuples(st.just("wait"), st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0, 17.5, 59.75, 60.0, 61.0, 90.0])),
    st.tuples(st.just("funds"), st.integers(0, 500)),
)


@settings(max_examples=300, deadline=None)
@given(rate=st.integers(0, 400), balance=st.integers(0, 2_000), grace=st.sampled_from([5.0, 30.0, 60.0]),
       timeline=st.lists(EVENTS, max_size=40))
def test_random_timelines_bill_exactly_the_time_both_were_connected(
        rate: int, balance: int, grace: float, timeline: list[tuple[str, object]]) -> None:
    """Ticks come every second (as the runtime does); whatever the timeline, the meter never charges time
    in which either side was away, keeps charged minutes in step with billable time, warns a minute ahead
    where it can, and ends charging exactly net_cents(rate, billable seconds)."""
    meter = Meter(rate_cents=rate, balance_cents=balance, grace_seconds=grace)
    present = {"client": False, "reader": False}
    t = 0.0
    reference = 0.0  # billable seconds by our own bookkeeping: time both were connected after the start
    was_started = False
    emitted: list[Decision] = []
    topped_up_at_b = 0.0
    warn_b: float | None = None

    def apply(decisions: list[Decision], kind: str, before_running: bool) -> None:
        nonlocal warn_b
        b = meter.billable_seconds(t)
        for i, d in enumerate(decisions):
            if isinstance(d, ChargeMinute):
                assert d.cents == rate
                assert d.index == len(charges(emitted)) + len(charges(decisions[:i]))
                # Only for billable time that has come: minute k once billable time has reached k * 60 s...
                assert d.index * 60 <= b + 1e-9
                # ... and never for a minute that starts while either side is away.
                assert before_running or Resume(t) in decisions[:i], (kind, decisions)
                if kind == "disconnect":
                    assert d.index * 60 < b
            if isinstance(d, Warn):
                warn_b = b
        emitted.extend(decisions)

    def step(kind: str, call: Callable[..., list[Decision]], *args: object) -> None:
        running = meter.running
        apply(call(*args), kind, running)
        check()

    def check() -> None:
        b = meter.billable_seconds(t)
        m = meter.minutes_charged
        if meter.ended:
            return
        assert meter.balance_cents >= 0
        assert abs(b - reference) < 1e-6, (b, reference)
        if meter.running:
            assert m == math.floor(b / 60) + 1
        elif meter.started:
            assert math.ceil(b / 60) <= m <= math.floor(b / 60) + 1 and m >= 1

    for action, arg in timeline:
        if meter.ended:
            break
        if action == "wait":
            target = t + float(arg)  # type: ignore[arg-type]
            while t < target and not meter.ended:
                dt = min(1.0, target - t)
                if meter.running:
                    reference += dt
                t += dt
                step("tick", meter.tick, t)
        elif action == "funds":
            if meter.running or meter.started:
                topped_up_at_b = meter.billable_seconds(t)
            new_balance = meter.balance_cents + int(arg)  # type: ignore[call-overload]
            step("funds", meter.funds_added, new_balance, t)
        elif action == "connect":
            present[str(arg)] = True
            step("connect", meter.connected, str(arg), t)
        else:
            present[str(arg)] = False
            step("disconnect", meter.disconnected, str(arg), t)
        was_started = was_started or meter.started
        if meter.ended and isinstance(emitted[-1], End) and emitted[-1].reason == "balance_exhausted":
            # Billable time stopped at the paid limit, possibly just before our reference.
            assert meter.billable_seconds(t) == meter.minutes_charged * 60 <= reference + 1e-6
            # Warned a minute ahead, or as early as it could be: when the money last changed.
            end_b = meter.billable_seconds(t)
            if end_b > topped_up_at_b:
                assert warn_b is not None, "ran out of money without a warning"
                assert end_b - warn_b >= min(60.0, end_b - topped_up_at_b) - 1e-6

    if not meter.ended:
        apply(meter.finish(t, "ended_by_client"), "finish", meter.running)
    ends = [d for d in emitted if isinstance(d, End)]
    refunds = [d for d in emitted if isinstance(d, Refund)]
    assert len(ends) == 1 and emitted[-1] == ends[0]
    assert len(refunds) == (1 if meter.minutes_charged else 0)
    final_b = meter.billable_seconds(t + 1000)
    total = sum(c.cents for c in charges(emitted)) - sum(r.cents for r in refunds)
    assert total == meter.charged_cents == net_cents(rate, final_b)
    if ends[0].reason == "grace_expired":
        assert not all(present.values())
    assert was_started or total == 0
