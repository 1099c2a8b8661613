"""The rules of a scheduled reading's end: who gets what back, whether the slot opens again, and who missed it.

Pure: no I/O and no clock; times are aware datetimes passed in. Every caller (the readings runtime, the
REST end and cancel, recovery after a restart) asks :func:`outcome` and carries out its answer. The rules
(docs/design.md, money rules), for a reading paid ``price`` at booking for ``minutes`` from ``starts_at``:

- **The client** cancelling or ending it before the start (or before it got under way): a cancellation.
  Everything back at least ``cancel_full_refund_hours`` before the start, later
  ``late_cancel_refund_percent`` of it; the slot opens again. Ending it under way after the start,
  missing it (no-show) or staying away: nothing back.
- **The reader** ending it, missing it (no-show) or staying away: everything back before the start or on
  a no-show; after the start, the booked minutes not given, pro rata (whole minutes from when it stopped
  being given to the booked end; a started minute counts as given; rounded down to the cent). The slot
  opens again.
- **A restart or a node failure** it could not resume from (its parties did not come back in time, or its
  booked time ran out meanwhile): refunded like the reader's end at the moment it stopped being given:
  everything when it had not been given since the start, else the minutes not given.
- **Its booked end** (``time_up``): nothing back.

Who missed a reading the two were never connected to together (:func:`no_show_party`): at the deadline,
the one seen last (or still there) waited for the other. A reader never seen, or gone before the client
was last seen, missed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MINUTE = timedelta(minutes=1)


class Party(StrEnum):
    CLIENT = "client"
    READER = "reader"


class Why(StrEnum):
    """How a scheduled reading ends."""

    ENDED = "ended"  # ``party`` ended (or cancelled) it
    NO_SHOW = "no_show"  # never together by the no-show deadline; ``party`` missed it
    AWAY = "away"  # under way, ``party`` stayed away past their deadline
    RESTART = "restart"  # a restart or failover it could not resume from
    TIME_UP = "time_up"  # its booked end


@dataclass(frozen=True)
class Policy:
    """The operator's settings the rules depend on."""

    cancel_full_refund_hours: float = 24
    late_cancel_refund_percent: int = 0
    grace_seconds: float = 60
    no_show_seconds: float = 600


@dataclass(frozen=True)
class Booking:
    price_cents: int
    starts_at: datetime
    minutes: int

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.minutes * MINUTE


@dataclass(frozen=True)
class Ending:
    """``why`` at ``at``; ``given_until``: the last moment the two were connected together (None: never)."""

    why: Why
    at: datetime
    party: Party | None = None
    given_until: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What the end does: the reading's end reason, the cents given back, whether the slot opens again, and
    whether it is a cancellation (an ``accepted`` reading becomes ``cancelled`` rather than ``ended``)."""

    reason: str
    refund_cents: int
    free_slot: bool
    cancellation: bool = False


def cancellation_refund(price_cents: int, starts_at: datetime, at: datetime, policy: Policy) -> int:
    """What a client gets back for cancelling at ``at``: all of it early enough, else the late share."""
    if at <= starts_at - timedelta(hours=policy.cancel_full_refund_hours):
        return price_cents
    return price_cents * policy.late_cancel_refund_percent // 100


def not_given_refund(booking: Booking, given_until: datetime | None) -> int:
    """The booked minutes after ``given_until`` (all of them if None or before the start), pro rata."""
    if given_until is None or given_until <= booking.starts_at:
        return booking.price_cents
    left = booking.ends_at - given_until
    if left <= timedelta(0):
        return 0
    not_given = min(booking.minutes, int(left // MINUTE))  # a started minute counts as given
    return booking.price_cents * not_given // booking.minutes


def outcome(booking: Booking, ending: Ending, policy: Policy) -> Outcome:
    """The rules above, for one ending."""
    why, party, at = ending.why, ending.party, ending.at
    if why is Why.TIME_UP:
        return Outcome("time_up", 0, free_slot=False)
    if why is Why.RESTART:
        return Outcome("server_restart", not_given_refund(booking, ending.given_until), free_slot=True)
    if party is None:
        raise ValueError(f"{why.value} needs the party it is about")
    if party is Party.CLIENT:
        if why is Why.ENDED and (at < booking.starts_at or ending.given_until is None):
            return Outcome("cancelled_by_client", cancellation_refund(booking.price_cents, booking.starts_at, at,
                                                                      policy), free_slot=True, cancellation=True)
        reason = {Why.ENDED: "ended_by_client", Why.NO_SHOW: "client_no_show", Why.AWAY: "grace_expired"}[why]
        return Outcome(reason, 0, free_slot=False)
    if why is Why.NO_SHOW:
        return Outcome("reader_no_show", booking.price_cents, free_slot=True)
    refund = booking.price_cents if at < booking.starts_at else not_given_refund(booking, ending.given_until)
    return Outcome("ended_by_reader" if why is Why.ENDED else "grace_expired", refund, free_slot=True)


def no_show_party(reader_seen: datetime | None, client_seen: datetime | None) -> Party:
    """Who missed a reading the two were never connected to together, from when each was last connected
    (the deadline itself for one still connected; None: never)."""
    if reader_seen is None:
        return Party.READER
    if client_seen is None:
        return Party.CLIENT
    return Party.CLIENT if reader_seen > client_seen else Party.READER


def no_show_deadline(booking: Booking, policy: Policy, *, resumed_at: datetime | None = None) -> datetime:
    """When a reading the two have not had together ends as a no-show: ``no_show_seconds`` after the start
    (never past the booked end). One resumed after a restart gives its parties ``grace_seconds`` to come back."""
    deadline = min(booking.starts_at + timedelta(seconds=policy.no_show_seconds), booking.ends_at)
    if resumed_at is not None:
        deadline = max(deadline, min(resumed_at + timedelta(seconds=policy.grace_seconds), booking.ends_at))
    return deadline


def away_deadline(booking: Booking, policy: Policy, away_since: datetime) -> datetime:
    """When a party away since ``away_since`` ends a reading under way: ``grace_seconds`` later, but one
    away at the start has the no-show window after the start to arrive."""
    deadline = away_since + timedelta(seconds=policy.grace_seconds)
    if away_since < booking.starts_at:
        deadline = max(deadline, booking.starts_at + timedelta(seconds=policy.no_show_seconds))
    return deadline
