"""What a running reading says to its participants' tabs: which tab is each side's, and the messages pushed.

A reading has at most one tab per side (client, reader); a newer tab of the same side replaces the older,
which is told so. The messages follow the signaling contract: ``session-state`` (the client alone gets
``balanceCents``, the reader alone ``earnedCents``: a reader never sees a client's balance), ``end-session``.
"""

from __future__ import annotations

import math
from typing import Any

import asyncpg

from api.readings.scheduled_watch import ScheduledWatch
from api.readings.states import Actor, State
from api.readings.store import session_json
from api.realtime.presence import Tab
from billing.meter import Meter

ROLES = (Actor.CLIENT, Actor.READER)

REPLACED = {"type": "error", "code": "replaced", "message": "this session was joined from another connection"}
MOVED = {"type": "error", "code": "reading_moved",
         "message": "this reading is now run by another server; join it again"}


class Tabs:
    """The current tab of each side of one reading."""

    def __init__(self) -> None:
        self._tabs: dict[Actor, Tab | None] = dict.fromkeys(ROLES)

    def attach(self, role: Actor, tab: Tab) -> None:
        """``tab`` is now ``role``'s; an earlier, different one is told it was replaced."""
        previous = self._tabs[role]
        if previous is not None and previous is not tab:
            previous.send(REPLACED)
        self._tabs[role] = tab

    def detach(self, role: Actor, tab: Tab) -> bool:
        """Forget ``tab`` if it is still ``role``'s; True when it was."""
        if self._tabs[role] is tab:
            self._tabs[role] = None
            return True
        return False

    def has(self, role: Actor) -> bool:
        return self._tabs[role] is not None

    def is_current(self, role: Actor, tab: Tab) -> bool:
        return self._tabs.get(role) is tab

    def push(self, role: Actor, message: dict[str, Any]) -> None:
        tab = self._tabs[role]
        if tab is not None:
            tab.send(message)

    def send_all(self, message: dict[str, Any]) -> None:
        for role in ROLES:
            self.push(role, message)

    def clear(self) -> None:
        for role in ROLES:
            self._tabs[role] = None


def end_message(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """``end-session`` {session, reason}: the reading has ended, with its totals."""
    return {"type": "end-session", "session": session_json(row), "reason": row["end_reason"]}


def state_message(role: Actor, *, session_id: str, status: State, now: float, meter: Meter | None,
                  watch: ScheduledWatch | None, row: asyncpg.Record | dict[str, Any], connected: dict[Actor, bool],
                  balance: int | None, earned: int,
                  grace_left: dict[Actor, int | None] | None = None) -> dict[str, Any]:
    """``session-state`` for one side: the meter's view for a per-minute reading, the booked time's for a
    scheduled one; ``graceLeft`` says, for a side that is away, how long it has to come back (so the other side
    can say "<name> reconnecting... (not billed)" with the time left)."""
    message: dict[str, Any] = {
        "type": "session-state",
        "sessionId": session_id,
        "status": status.value,
        "billableSeconds": int(meter.billable_seconds(now)) if meter else 0,
        "chargedCents": meter.charged_cents if meter else 0,
        "secondsLeft": math.floor(meter.seconds_left(now)) if meter else None,
        "running": bool(meter and meter.running),
        "connected": {r.value: connected[r] for r in ROLES},
        "graceLeft": {r.value: (grace_left or {}).get(r) for r in ROLES},
    }
    if watch is not None:
        message["billableSeconds"] = int(watch.together_seconds(now))
        message["chargedCents"] = int(row["charged_cents"])
        message["secondsLeft"] = math.floor(watch.seconds_left(now))
        message["running"] = status is State.ACTIVE and watch.together()
    if role is Actor.CLIENT:
        # The meter's view (last balance read, less the minutes it charged since) agrees with chargedCents.
        message["balanceCents"] = meter.balance_cents if meter is not None and not meter.ended else balance
    else:
        message["earnedCents"] = earned
    return message
