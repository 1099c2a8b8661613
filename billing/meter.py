"""The meter: turns a reading's connect/disconnect events into per-minute charges, warnings and its end.

Pure: no I/O and no clock. Time comes in as monotonic seconds on every call, and what should happen comes
back as a list of *decisions* for the runtime to carry out (charge the ledger, tell the client, end the
reading). One meter per reading.

Rules (docs/design.md, money rules):

- Billable time runs only while *both* participants are connected. The first time both are, the meter
  starts (``Resume``); any disconnect pauses it (``Pause``), the next moment both are back resumes it.
- Minute ``k`` (0, 1, 2, ...) is charged at its start: when billable time reaches ``k * 60`` s and keeps
  running. A charge is never emitted for time in which either side was away; a disconnect landing exactly
  on a minute boundary does not charge the next minute (it is charged if and when both are back).
- When the balance cannot pay the next minute, the reading ends as the paid time runs out
  (``End("balance_exhausted")``); billable time never runs past what was paid.
- ``Warn`` comes once per shortfall, as soon as the paid time plus what the balance still covers is at most
  ``warn_seconds + tick_seconds``: with ticks at least every ``tick_seconds`` the client hears it
  ``warn_seconds`` ahead, unless the balance never covered that much. Funds added in time re-arm it and
  keep the reading going.
- After the meter has started, a participant away for ``grace_seconds`` ends it (``End("grace_expired")``).
- Every end emits ``Refund(cents, minute_index)`` for the unused part of the last charged minute (possibly
  0 cents; none when no minute was charged, or the last was free), then ``End(reason)``. See
  :func:`prorated_refund` for the rounding.
- The first ``free_minutes`` minutes (an intro offer) are emitted ``free``: they cost the client nothing and
  need no balance; the balance is needed from the first paid minute on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PARTICIPANTS = ("client", "reader")
MINUTE = 60
# Billable seconds are measured from float monotonic clocks; a microsecond of jitter is not a started second.
_SECOND_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ChargeMinute:
    """Charge ``cents`` for minute ``index`` now (idempotency key ``reading:{session}:minute:{index}``).

    ``free``: an intro-offer minute: the client pays nothing, the platform's promotion account pays the reader
    their share of ``cents`` (billing/intro_offer.py)."""

    index: int
    cents: int
    free: bool = False


@dataclass(frozen=True)
class Warn:
    """The balance will not cover the next minute: ``seconds_left`` of billable time remain."""

    seconds_left: float


@dataclass(frozen=True)
class Pause:
    """Billable time stopped at ``at``: a participant left."""

    at: float


@dataclass(frozen=True)
class Resume:
    """Billable time runs from ``at``: both participants are connected (also emitted at the very start)."""

    at: float


@dataclass(frozen=True)
class Refund:
    """Give back ``cents``, the unused part of minute ``minute_index`` (key ``reading:{session}:refund``)."""

    cents: int
    minute_index: int


@dataclass(frozen=True)
class End:
    """The reading is over: ``grace_expired``, ``balance_exhausted`` or the reason given to ``finish``."""

    reason: str


Decision = ChargeMinute | Warn | Pause | Resume | Refund | End


def billed_seconds(billable_seconds: float) -> int:
    """Whole seconds a client pays for: every started second counts (within a microsecond of clock jitter)."""
    return max(0, math.ceil(billable_seconds - _SECOND_TOLERANCE))


def net_cents(rate_cents: int, billable_seconds: float) -> int:
    """What ``billable_seconds`` cost at ``rate_cents`` a minute, to the second, rounded up to the cent.

    This is what a reading's charges minus its final refund come to: ``ceil(rate * billed_seconds / 60)``.
    """
    return -(-rate_cents * billed_seconds(billable_seconds) // MINUTE)


def prorated_refund(rate_cents: int, billable_seconds: float, minutes_charged: int) -> int:
    """The unused part of the last charged minute, prorated to the second.

    ``refund = rate * unused_whole_seconds // 60``, where the used seconds of the last minute are rounded
    *up* (a started second is used) and the refund is rounded *down* to the cent. So the refund never gives
    back more than the unused time is worth: no cent is created, and charges minus refund equal
    :func:`net_cents` exactly.
    """
    if minutes_charged <= 0 or rate_cents <= 0:
        return 0
    used = billed_seconds(billable_seconds - (minutes_charged - 1) * MINUTE)
    unused = MINUTE - min(MINUTE, used)
    return rate_cents * unused // MINUTE


class Meter:
    """One reading's meter: rate, the client's balance as last known, and who is connected when.

    ``billable_seconds`` and ``minutes_charged`` restore a meter from persisted state (another node, or a
    restart); such a meter counts as started, so both participants' grace periods run from the first call.
    ``restored`` says so even when nothing was billed yet (a reading adopted right after it started).
    """

    def __init__(self, *, rate_cents: int, balance_cents: int, grace_seconds: float = 60,
                 warn_seconds: float = 60, billable_seconds: float = 0.0, minutes_charged: int = 0,
                 tick_seconds: float = 1.0, restored: bool = False, free_minutes: int = 0) -> None:
        if rate_cents < 0 or balance_cents < 0 or minutes_charged < 0 or billable_seconds < 0 or free_minutes < 0:
            raise ValueError("rate, balance, minutes and seconds must not be negative")
        if grace_seconds <= 0 or warn_seconds < 0 or tick_seconds < 0:
            raise ValueError("grace must be positive; warn and tick must not be negative")
        self._rate = rate_cents
        self._balance = balance_cents
        self._grace = float(grace_seconds)
        self._warn_at = float(warn_seconds) + float(tick_seconds)
        self._present = dict.fromkeys(PARTICIPANTS, False)
        self._away_since: dict[str, float | None] = dict.fromkeys(PARTICIPANTS, None)
        self._base = float(billable_seconds)  # billable seconds up to ``_since`` (or in total while paused)
        self._since: float | None = None  # when the current running stretch began
        self._minutes = minutes_charged
        self._free = free_minutes
        self._charged = max(0, minutes_charged - free_minutes) * rate_cents
        self._refund = 0
        self._started = restored or billable_seconds > 0 or minutes_charged > 0
        self._restored = self._started
        self._warned = False
        self._ended = False
        self._end_reason: str | None = None
        self._last: float | None = None

    # -- read-only views -------------------------------------------------------------------------------

    @property
    def rate_cents(self) -> int:
        return self._rate

    @property
    def minutes_charged(self) -> int:
        return self._minutes

    @property
    def charged_cents(self) -> int:
        """Charged so far, net of the final refund once the meter has ended."""
        return self._charged - self._refund

    @property
    def refund_cents(self) -> int:
        return self._refund

    @property
    def running(self) -> bool:
        return self._since is not None

    @property
    def started(self) -> bool:
        return self._started

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def end_reason(self) -> str | None:
        return self._end_reason

    @property
    def balance_cents(self) -> int:
        """The meter's view of the wallet: the balance it was last told, less the minutes it charged since."""
        return self._balance

    def connected_participants(self) -> frozenset[str]:
        return frozenset(p for p, here in self._present.items() if here)

    def billable_seconds(self, now: float) -> float:
        """Billable seconds as of ``now``, never past the time the balance pays for."""
        if self._since is None:
            return self._base
        seconds = self._base + max(0.0, now - self._since)
        if self._rate > 0:
            seconds = min(seconds, (self._minutes + self._free_left() + self._balance // self._rate) * MINUTE)
        return seconds

    def seconds_left(self, now: float) -> float:
        """Billable seconds left: the rest of the paid minutes plus the whole minutes the balance covers."""
        if self._ended:
            return 0.0
        if self._rate == 0:
            return math.inf
        paid_left = max(0.0, self._minutes * MINUTE - self.billable_seconds(now))
        return paid_left + (self._free_left() + self._balance // self._rate) * MINUTE

    # -- events ----------------------------------------------------------------------------------------

    def connected(self, participant: str, at: float) -> list[Decision]:
        _check_participant(participant)
        if self._ended:
            return []
        now = self._clock(at)
        out: list[Decision] = []
        self._advance(now, out, stays_running=self.running)
        if self._ended:
            return out
        self._present[participant] = True
        self._away_since[participant] = None
        if all(self._present.values()) and self._since is None:
            self._started = True
            self._since = now
            out.append(Resume(now))
            self._advance(now, out, stays_running=True)
        return out

    def disconnected(self, participant: str, at: float) -> list[Decision]:
        _check_participant(participant)
        if self._ended:
            return []
        now = self._clock(at)
        out: list[Decision] = []
        was_present = self._present[participant]
        self._advance(now, out, stays_running=self.running and not was_present)
        if self._ended or not was_present:
            return out
        self._present[participant] = False
        if self._started:
            self._away_since[participant] = now
        if self._since is not None:
            self._base = self.billable_seconds(now)
            self._since = None
            out.append(Pause(now))
        return out

    def funds_added(self, balance_cents: int, at: float) -> list[Decision]:
        """The wallet now holds ``balance_cents`` (read after every charge this meter emitted)."""
        if balance_cents < 0:
            raise ValueError("balance must not be negative")
        if self._ended:
            return []
        now = self._clock(at)
        self._balance = balance_cents
        if self.seconds_left(now) > self._warn_at:
            self._warned = False
        out: list[Decision] = []
        self._advance(now, out, stays_running=self.running)
        return out

    def tick(self, now: float) -> list[Decision]:
        if self._ended:
            return []
        now = self._clock(now)
        out: list[Decision] = []
        self._advance(now, out, stays_running=self.running)
        if self._ended:
            return out
        for since in self._away_since.values():
            if since is not None and now - since >= self._grace:
                self._end(now, "grace_expired", out)
                break
        return out

    def finish(self, now: float, reason: str) -> list[Decision]:
        """End the reading now: bill time used up to ``now``, refund the unused part of the last minute."""
        if self._ended:
            return []
        now = self._clock(now)
        out: list[Decision] = []
        self._advance(now, out, stays_running=False)
        if not self._ended:
            self._end(now, reason, out)
        return out

    def charge_failed(self, now: float, index: int | None = None) -> list[Decision]:
        """The ledger refused minute ``index`` (default: the last one emitted) for lack of funds.

        That minute and any emitted after it are taken back; billable time stops at the end of the paid
        minutes, and the reading ends with ``balance_exhausted``.
        """
        if self._ended:
            return []
        now = self._clock(now)
        failed = self._minutes - 1 if index is None else index
        if not 0 <= failed < self._minutes:
            raise ValueError(f"minute {failed} was never charged")
        seconds = min(self.billable_seconds(now), failed * MINUTE)
        self._charged -= sum(self._rate for i in range(failed, self._minutes) if not self._is_free(i))
        self._minutes = failed
        self._balance = 0
        self._base, self._since = seconds, None
        out: list[Decision] = []
        self._end(now, "balance_exhausted", out)
        return out

    # -- internals -------------------------------------------------------------------------------------

    def _clock(self, at: float) -> float:
        """Monotonic time as given, never going backwards (a late event counts as now)."""
        if self._last is not None and at < self._last:
            at = self._last
        if self._restored:
            self._restored = False
            for participant in PARTICIPANTS:
                if not self._present[participant]:
                    self._away_since[participant] = at
        self._last = at
        return at

    def _advance(self, now: float, out: list[Decision], *, stays_running: bool) -> None:
        """Bring billable time up to ``now``, charging each minute as it starts (or was consumed)."""
        if self._since is None:
            return
        seconds = self._base + max(0.0, now - self._since)
        while True:
            paid = self._minutes * MINUTE
            if not (seconds > paid or (stays_running and seconds >= paid)):
                break
            free = self._is_free(self._minutes)
            if self._rate > 0 and not free and self._balance < self._rate:
                # The paid time ran out at ``paid``; nothing past it is billable.
                self._base, self._since = float(paid), None
                self._end(now, "balance_exhausted", out)
                return
            out.append(ChargeMinute(self._minutes, self._rate, free=free))
            self._minutes += 1
            if not free:
                self._balance -= self._rate
                self._charged += self._rate
        self._base, self._since = seconds, now
        if not self._warned and self._rate > 0 and self.seconds_left(now) <= self._warn_at:
            self._warned = True
            out.append(Warn(self.seconds_left(now)))

    def _is_free(self, index: int) -> bool:
        return index < self._free

    def _free_left(self) -> int:
        """Free minutes not started yet."""
        return max(0, self._free - self._minutes)

    def _end(self, now: float, reason: str, out: list[Decision]) -> None:
        if self._since is not None:
            self._base, self._since = self.billable_seconds(now), None
        if self._minutes > 0 and not self._is_free(self._minutes - 1):
            self._refund = prorated_refund(self._rate, self._base, self._minutes)
            out.append(Refund(self._refund, self._minutes - 1))
        self._ended = True
        self._end_reason = reason
        out.append(End(reason))


def _check_participant(participant: str) -> None:
    if participant not in PARTICIPANTS:
        raise ValueError(f"participant must be one of {PARTICIPANTS}, got {participant!r}")
