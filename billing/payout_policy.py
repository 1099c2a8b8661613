"""When a reader's earnings may leave, and how much: the pure rules of payouts and withdrawals (no I/O).

*Payable* is modelled by age. Every earning (the reader's share of a charge, gift or paid message) is held for
the hold period before it may be paid out, so that a refund or a dispute in that time is taken from earnings
that are still here. Everything that lowers earnings (refunds, payouts) counts at once, whatever its age; money
coming back from a failed or reversed payout was payable already and is payable again at once. So

    payable = earnings balance - earnings credited by charges within the hold period, never below zero.

A reader whose earnings went negative (a late refund after a payout) has nothing payable until later earnings
cover the debt: the platform carries it meanwhile, and it shows in the trial balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.errors import BillingError
from billing.prices import dollars


class PayoutRefused(BillingError):
    """No payout now: nothing payable, below the minimum, no ready account, or one already in transit."""

    code = "payout_refused"


class WithdrawalRefused(BillingError):
    """No withdrawal now: over a limit, an open dispute, more than can go back to cards, ..."""

    code = "withdrawal_refused"


def payable_cents(balance_cents: int, maturing_cents: int) -> int:
    """What may be paid out: the balance less what is still within the hold period, never negative."""
    return max(0, balance_cents - max(0, maturing_cents))


def payout_cents(*, payable: int, minimum_cents: int, on_demand: bool) -> int:
    """The amount of a payout now, or :class:`PayoutRefused`. On demand needs at least the minimum; the
    schedule pays whatever is payable (it runs rarely, so it never strands small amounts)."""
    if payable <= 0:
        raise PayoutRefused("nothing is payable yet: earnings are held for the hold period first",
                            code="nothing_payable")
    if on_demand and payable < minimum_cents:
        raise PayoutRefused(f"an on-demand payout needs at least {minimum_cents} cents payable; {payable} are",
                            code="below_minimum")
    return payable


def scheduled_due(last_scheduled: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Whether the schedule pays a reader now: never paid by it, or last paid by it an interval ago."""
    return last_scheduled is None or now - last_scheduled >= interval


@dataclass(frozen=True)
class Deposit:
    """A card payment that can still be refunded: its ledger key, PaymentIntent and what is left of it."""

    key: str
    payment_intent: str
    remaining_cents: int


def allocate(cents: int, deposits: list[Deposit]) -> list[tuple[Deposit, int]]:
    """Which card payments a withdrawal of ``cents`` refunds: ``deposits`` in the order given (newest first),
    each as much as is left of it, the last one partially. :class:`WithdrawalRefused` when the cards cannot
    take it all (money credited by an operator, or already refunded, cannot go back to a card)."""
    parts: list[tuple[Deposit, int]] = []
    left = cents
    for deposit in deposits:
        if left == 0:
            break
        take = min(left, deposit.remaining_cents)
        if take > 0:
            parts.append((deposit, take))
            left -= take
    if left:
        raise WithdrawalRefused(f"Only {dollars(cents - left)} of it can go back to a card: money added by card"
                                " can be withdrawn, credits cannot",
                                code="not_refundable")
    return parts


def check_withdrawal(*, cents: int, balance_cents: int, min_cents: int, withdrawn_today_cents: int,
                     max_per_day_cents: int, open_disputes: int) -> None:
    """The limits of a withdrawal, or :class:`WithdrawalRefused` with a code the client can act on."""
    if open_disputes:
        raise WithdrawalRefused("A card dispute on this account is open: withdrawals wait until it is closed",
                                code="dispute_open")
    if cents < min_cents:
        raise WithdrawalRefused(f"A withdrawal is at least {dollars(min_cents)}", code="below_minimum")
    if cents > balance_cents:
        raise WithdrawalRefused(f"Your wallet holds {dollars(balance_cents)}", code="insufficient_funds")
    if withdrawn_today_cents + cents > max_per_day_cents:
        raise WithdrawalRefused(f"At most {dollars(max_per_day_cents)} a day can be withdrawn;"
                                f" {dollars(withdrawn_today_cents)} already today",
                                code="daily_limit")
