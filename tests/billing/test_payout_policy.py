"""The pure rules of money out: what is payable, when a payout may run, how a withdrawal is split and limited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.payout_policy import (
    Deposit,
    PayoutRefused,
    WithdrawalRefused,
    allocate,
    check_withdrawal,
    payable_cents,
    payout_cents,
    scheduled_due,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def test_earnings_still_within_the_hold_period_are_not_payable() -> None:
    assert payable_cents(balance_cents=10_000, maturing_cents=3_000) == 7_000


def test_a_refund_within_the_hold_period_lowers_what_becomes_payable() -> None:
    # 5000 earned long ago, 3000 earned this week, and a refund that took 4000 back this week: the balance is
    # 4000, of which the 3000 still maturing are not payable yet.
    assert payable_cents(balance_cents=4_000, maturing_cents=3_000) == 1_000


def test_a_reader_in_debt_has_nothing_payable() -> None:
    assert payable_cents(balance_cents=-500, maturing_cents=0) == 0
    assert payable_cents(balance_cents=2_000, maturing_cents=2_500) == 0


def test_on_demand_needs_the_minimum_and_the_schedule_pays_any_payable_amount() -> None:
    with pytest.raises(PayoutRefused) as refused:
        payout_cents(payable=4_999, minimum_cents=5_000, on_demand=True)
    assert refused.value.code == "below_minimum"
    assert payout_cents(payable=5_000, minimum_cents=5_000, on_demand=True) == 5_000
    assert payout_cents(payable=12, minimum_cents=5_000, on_demand=False) == 12


def test_nothing_payable_is_never_paid_by_either_trigger() -> None:
    for on_demand in (True, False):
        with pytest.raises(PayoutRefused) as refused:
            payout_cents(payable=0, minimum_cents=0, on_demand=on_demand)
        assert refused.value.code == "nothing_payable"


def test_the_schedule_pays_a_reader_once_per_interval() -> None:
    assert scheduled_due(None, NOW, WEEK)
    assert not scheduled_due(NOW - timedelta(days=6, hours=23), NOW, WEEK)
    assert scheduled_due(NOW - WEEK, NOW, WEEK)


def _deposits(*remaining: int) -> list[Deposit]:
    return [Deposit(key=f"dep{n}", payment_intent=f"pi_{n}", remaining_cents=c) for n, c in enumerate(remaining)]


def test_a_withdrawal_refunds_the_newest_payments_first_and_the_last_one_partially() -> None:
    parts = allocate(3_500, _deposits(2_000, 0, 5_000, 1_000))
    assert [(d.key, cents) for d, cents in parts] == [("dep0", 2_000), ("dep2", 1_500)]


def test_a_withdrawal_beyond_what_cards_can_take_back_is_refused() -> None:
    with pytest.raises(WithdrawalRefused) as refused:
        allocate(3_001, _deposits(1_000, 2_000))
    assert refused.value.code == "not_refundable"


@pytest.mark.parametrize(("change", "code"), [
    ({"open_disputes": 1}, "dispute_open"),
    ({"cents": 499}, "below_minimum"),
    ({"cents": 10_001}, "insufficient_funds"),
    ({"withdrawn_today_cents": 45_001}, "daily_limit"),
])
def test_withdrawal_limits_refuse_with_a_code_the_client_can_act_on(change: dict[str, int], code: str) -> None:
    request = {"cents": 5_000, "balance_cents": 10_000, "min_cents": 500, "withdrawn_today_cents": 0,
               "max_per_day_cents": 50_000, "open_disputes": 0} | change
    with pytest.raises(WithdrawalRefused) as refused:
        check_withdrawal(**request)
    assert refused.value.code == code


def test_a_withdrawal_within_every_limit_passes() -> None:
    check_withdrawal(cents=10_000, balance_cents=10_000, min_cents=500, withdrawn_today_cents=40_000,
                     max_per_day_cents=50_000, open_disputes=0)
