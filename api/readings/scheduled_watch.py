"""The watch over one running scheduled reading: who is connected, whether the two have been together, and
what ends it now (its booked end, a no-show, a party away too long, a restart its parties did not come back
from), by the rules of :mod:`billing.scheduled_policy`.

Pure: no I/O. Time comes in as the runtime's monotonic seconds; a wall-clock anchor taken when the watch is
made converts them to the datetimes the rules speak in (the booked start and end, the policy's windows).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from billing.scheduled_policy import (
    Booking,
    Ending,
    Party,
    Policy,
    Why,
    away_deadline,
    no_show_deadline,
    no_show_party,
)


class ScheduledWatch:
    """One scheduled reading's presence and deadlines.

    :param booking: what was booked (price, start, length).
    :param policy: the operator's windows (grace, no-show) and cancellation policy.
    :param now: monotonic seconds now, and ``wall`` the same moment as an aware datetime.
    :param active: the reading is under way (the two have been connected together).
    :param resumed: the reading was adopted after its previous owner stopped (a restart, a failed node):
        nobody is connected yet, and each party has the grace period to come back.
    :param together_seconds: seconds the two had together so far (persisted by the previous owner).
    :param last_together: the last moment they were known to be together (previous owner's heartbeat).
    """

    def __init__(self, booking: Booking, policy: Policy, *, now: float, wall: datetime, active: bool = False,
                 resumed: bool = False, together_seconds: float = 0.0,
                 last_together: datetime | None = None) -> None:
        self.booking = booking
        self.policy = policy
        self._mono0, self._wall0 = now, wall
        self.active = active
        self.resumed = resumed
        self._present = dict.fromkeys(Party, False)
        self._seen: dict[Party, float | None] = dict.fromkeys(Party)
        self._away_since: dict[Party, float | None] = dict.fromkeys(Party, now if active else None)
        self._back: set[Party] = set()  # connected since the reading was resumed
        self._together_total = float(together_seconds)
        self._together_since: float | None = None
        self._last_together = self.mono(last_together) if last_together is not None else None
        self._no_show_at = self.mono(no_show_deadline(booking, policy, resumed_at=wall if resumed else None))
        self.ends_at = self.mono(booking.ends_at)

    # -- clocks ------------------------------------------------------------------------------------------

    def wall(self, mono: float) -> datetime:
        return self._wall0 + timedelta(seconds=mono - self._mono0)

    def mono(self, wall: datetime) -> float:
        return self._mono0 + (wall - self._wall0).total_seconds()

    # -- what happens --------------------------------------------------------------------------------------

    def presence(self, party: Party, connected: bool, now: float) -> None:
        """``party`` connected or dropped at ``now``."""
        if connected == self._present[party]:
            return
        was_together = self.together()
        self._present[party] = connected
        self._seen[party] = now
        if connected:
            self._away_since[party] = None
            self._back.add(party)
        elif self.active:
            self._away_since[party] = now
        if self.active and not was_together and self.together():
            self._together_since = now
        elif was_together and not self.together():
            self._stop_together(now)

    def start(self, now: float) -> None:
        """The two are connected together for the first time: the reading is under way."""
        self.active = True
        self._away_since = dict.fromkeys(Party)
        if self.together():
            self._together_since = now

    def due(self, now: float) -> Ending | None:
        """What ends the reading at ``now``, if anything."""
        if not self.active:
            if now < self._no_show_at:
                return None
            if self.resumed and not self._back:
                return Ending(Why.RESTART, self.wall(now))
            seen = {p: now if self._present[p] else self._seen[p] for p in Party}
            missed = no_show_party(self._wall_or_none(seen[Party.READER]), self._wall_or_none(seen[Party.CLIENT]))
            return Ending(Why.NO_SHOW, self.wall(now), party=missed)
        if now >= self.ends_at:
            if self.resumed and not self._back:
                return Ending(Why.RESTART, self.wall(now), given_until=self.given_until(now))
            return Ending(Why.TIME_UP, self.wall(now), given_until=self.given_until(now))
        deadlines = {p: self.mono(away_deadline(self.booking, self.policy, self.wall(since)))
                     for p, since in self._away_since.items() if since is not None}
        passed = sorted((at, p) for p, at in deadlines.items() if now >= at)
        if not passed:
            return None
        if self.resumed and not self._back:
            return Ending(Why.RESTART, self.wall(now), given_until=self.given_until(now))
        return Ending(Why.AWAY, self.wall(now), party=passed[0][1], given_until=self.given_until(now))

    def ending_by(self, party: Party, now: float) -> Ending:
        """``party`` ends (or cancels) the reading at ``now``."""
        return Ending(Why.ENDED, self.wall(now), party=party, given_until=self.given_until(now))

    # -- views ---------------------------------------------------------------------------------------------

    def together(self) -> bool:
        return all(self._present.values())

    def together_seconds(self, now: float) -> float:
        running = now - self._together_since if self._together_since is not None else 0.0
        return self._together_total + max(0.0, running)

    def seconds_left(self, now: float) -> float:
        return max(0.0, self.ends_at - now)

    def given_until(self, now: float) -> datetime | None:
        """The last moment the two were together (now, if they are); None if they never were."""
        if self.active and self.together():
            return self.wall(now)
        return self._wall_or_none(self._last_together)

    # -- internals -----------------------------------------------------------------------------------------

    def _stop_together(self, now: float) -> None:
        if self._together_since is not None:
            self._together_total += max(0.0, now - self._together_since)
            self._together_since = None
        self._last_together = now

    def _wall_or_none(self, mono: float | None) -> datetime | None:
        return None if mono is None else self.wall(mono)
