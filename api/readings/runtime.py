"""One running reading on this node: joins its participants' connectivity to the meter, and the meter to money.

A :class:`ReadingRuntime` is the reading's one owner while it runs: it holds the reading's lease
(:mod:`api.readings.leases`) from the moment it starts (a reader's accept, a booked reading's window
opening, or the adoption of a reading whose previous owner stopped) until the reading ends or it hands
it over. It runs ONE task that takes everything that happens to the reading from a queue (a socket
joined or left, media connected or dropped, someone ends it, the lease was lost) and a tick every second,
so its state is only ever touched by that task, in order. It:

- decides when the reading starts (both participants connected together the first time: media for
  audio/video, the signaling socket for chat) and writes ``active``;
- per minute: tells its :class:`api.readings.metering.Metering` what happens, which feeds billing's pure
  meter and carries out its decisions (the charges, the refund, the heartbeat, the balance poll);
  scheduled: watches its time (:class:`ScheduledWatch`) and ends it by the scheduled rules
  (:mod:`billing.scheduled_policy`);
- pushes ``session-state`` every second and on every change, ``start-session``, ``end-session`` and
  notifications to the participants' tabs (:mod:`api.readings.pushes`);
- when the reading ends, settles it, closes the relay room and stops.

Every write carries the lease's epoch: a runtime whose lease was taken over (or whose reading ended
elsewhere) writes nothing, says nothing false to the sockets, closes its room and stops at once
(:meth:`_stop_lost`). One that cannot renew its lease (the node's keeper could not reach the database)
holds itself fenced, charging and pushing nothing, from the moment its own clock says the lease ran out.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from api.readings import leases as reading_leases
from api.readings import scheduling
from api.readings.leases import Lease
from api.readings.metering import DB_ERRORS, Metering
from api.readings.pushes import MOVED, ROLES, Tabs, end_message, state_message
from api.readings.scheduled_watch import ScheduledWatch
from api.readings.states import FINAL, Actor, Event, State
from api.readings.store import apply, fetch, session_json, set_reader_busy
from api.realtime.presence import Tab
from billing import recovery
from billing.errors import LeaseLost
from billing.meter import Meter
from billing.metrics import BillingMetrics
from billing.scheduled_policy import Ending, Outcome, Party, Policy, Why, outcome

log = logging.getLogger(__name__)

__all__ = ["DB_ERRORS", "ReadingRuntime", "participant_id"]


def participant_id(session_id: str, role: Actor | str) -> str:
    """The relay participant of one side of a reading (the room is the reading's id)."""
    return f"{session_id}:{Actor(role).value}"


@dataclass
class _Item:
    """Something that happened to the reading, for the runtime's task to apply in order."""

    kind: str
    role: Actor | None = None
    tab: Tab | None = None
    value: Any = None
    done: asyncio.Future[Any] | None = field(default=None, repr=False)


class ReadingRuntime:
    """The live part of one reading: connectivity, meter, money and pushes, driven by one task.

    :param row: the reading as stored when this node took its lease.
    :param lease: the lease this runtime holds; ``lease_valid_until`` is when it runs out by ``lease_clock``.
    :param resumed: the reading was adopted from an owner that stopped (a restart, a failed node): its
        meter or watch is restored from the row, nobody is connected, and the grace period runs.
    :param pool: the database.
    :param relay_close: closes the reading's relay room (``relay.close_room``), called once at the end.
    :param deliver: pushes stored notifications after their transaction commits.
    :param store_notification: stores one notification in a transaction (``notifications.store``).
    :param start_timeout: seconds an accepted per-minute reading may wait for both participants.
    :param grace_seconds: how long one participant may be away before the meter ends the reading.
    :param policy: the scheduled rules' settings (grace, no-show window, cancellation policy).
    :param clock: monotonic seconds for the meter and the booked times; injectable so a test can drive it.
    :param lease_clock: monotonic seconds for the lease (always real time).
    """

    def __init__(
        self,
        row: asyncpg.Record | dict[str, Any],
        *,
        lease: Lease,
        lease_valid_until: float,
        pool: asyncpg.Pool,
        relay_close: Callable[[str], Awaitable[None]],
        deliver: Callable[[list[tuple[str, dict[str, Any]]]], None],
        store_notification: Callable[..., Awaitable[tuple[str, dict[str, Any]]]],
        start_timeout: float,
        grace_seconds: float,
        policy: Policy,
        resumed: bool = False,
        clock: Callable[[], float] = time.monotonic,
        lease_clock: Callable[[], float] = time.monotonic,
        on_finished: Callable[[ReadingRuntime], None] | None = None,
        metrics: BillingMetrics | None = None,
        receipt: Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[None]] | None = None,
    ) -> None:
        self.session_id = str(row["id"])
        self.client_id = str(row["client_id"])
        self.reader_id = str(row["reader_id"])
        self.session_type: str = row["session_type"]
        self.rate_cents: int = row["rate_cents"]
        self.status = State(row["status"])
        self.scheduled = row["mode"] == "scheduled"
        self.row = row
        self.lease = lease
        self.resumed = resumed
        self._lease_valid_until = lease_valid_until
        self._lease_clock = lease_clock
        self._pool = pool
        self._relay_close = relay_close
        self._deliver = deliver
        self._store_notification = store_notification
        self._metrics = metrics
        self._receipt = receipt  # mails the client the receipt of a billed reading, in the end's transaction
        self._grace = grace_seconds
        self._clock = clock
        self._on_finished = on_finished
        now = clock()
        self._deadline = now + start_timeout
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._tabs = Tabs()
        self._media: dict[Actor, bool] = dict.fromkeys(ROLES, False)
        self._connected: dict[Actor, bool] = dict.fromkeys(ROLES, False)
        # Since when each side has been away from a started reading (its grace period runs from then).
        self._away_since: dict[Actor, float | None] = dict.fromkeys(ROLES, None)
        self._back: set[Actor] = set()  # connected since the runtime started (what a resumed reading waits for)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False  # handed over or lost: the task ends without settling
        self.lost = False
        self._fenced_logged = False
        self.finished = asyncio.Event()
        self._log = {"sessionId": self.session_id, "epoch": lease.epoch}
        self._money = Metering(pool, session_id=self.session_id, client_id=self.client_id, reader_id=self.reader_id,
                               rate_cents=self.rate_cents, grace_seconds=grace_seconds, epoch=lease.epoch,
                               metrics=metrics, log_extra=self._log, on_change=self._push_state, on_warn=self._warn,
                               on_end=self._meter_ended, is_over=lambda: self.status is State.ENDED,
                               free_minutes=int(row.get("intro_minutes") or 0))
        self._watch: ScheduledWatch | None = None
        if self.scheduled:
            self._watch = ScheduledWatch(
                scheduling.booking(row), policy, now=now, wall=datetime.now(UTC),
                active=self.status is State.ACTIVE, resumed=resumed,
                together_seconds=float(row["meter_billable_seconds"] or 0),
                last_together=row["meter_heartbeat_at"] or row["started_at"])

    # -- what the rest of the node tells the runtime (any task; applied in order by the runtime's task) --

    def start(self) -> None:
        # A fresh context: the task outlives the request that started it (and its request id in the logs).
        self._task = asyncio.create_task(self._run(), name=f"reading {self.session_id}", context=contextvars.Context())

    def attach(self, role: Actor, tab: Tab) -> None:
        """A participant's socket joined; it replaces (and is told so) any earlier socket of theirs."""
        self._queue.put_nowait(_Item("attach", role, tab))

    def detach(self, role: Actor, tab: Tab) -> None:
        """A participant's socket left (closed, or joined something else)."""
        self._queue.put_nowait(_Item("detach", role, tab))

    def media_changed(self, role: Actor, connected: bool) -> None:
        """The relay says the participant's media connected or dropped."""
        self._queue.put_nowait(_Item("media", role, value=connected))

    def wake(self) -> None:
        """Look at the clock now (a test that moved its clock does not wait for the next real second)."""
        self._queue.put_nowait(_Item("wake"))

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send to both participants' sockets (chat)."""
        self._queue.put_nowait(_Item("broadcast", value=message))

    async def end(self, actor: Actor, reason: str) -> asyncpg.Record:
        """End the reading (settling it) and return its final row; ends only once, later calls get the row."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item("end", actor, value=reason, done=done))
        if self._task is None or self._task.done():
            return await fetch(self._pool, self.session_id)
        return await done

    async def hand_over(self) -> None:
        """Stop without settling and let the lease lapse now (the node is shutting down): the reading stays
        active, its meter state persisted, for the next node to adopt when its parties re-join."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item("hand-over", done=done))
        if self._task is not None and not self._task.done():
            await done

    def lease_renewed(self, valid_until: float) -> None:
        """The node's keeper renewed the lease; it holds until ``valid_until`` (by ``lease_clock``)."""
        self._lease_valid_until = max(self._lease_valid_until, valid_until)

    def lease_lost(self) -> None:
        """The keeper found the lease held by another owner, or the reading closed: stop at once."""
        self.lost = True
        self._queue.put_nowait(_Item("lost"))

    @property
    def lease_valid(self) -> bool:
        return self._lease_clock() < self._lease_valid_until

    def is_current(self, role: Actor, tab: Tab) -> bool:
        return self._tabs.is_current(role, tab)

    async def close(self) -> None:
        """Stop the task without settling or handing over (the process is going away)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- the task ---------------------------------------------------------------------------------------

    async def _run(self) -> None:
        next_tick = self._clock() + 1.0
        needs_meter = self.resumed and self.status is State.ACTIVE and not self.scheduled
        try:
            while self.status is not State.ENDED and not self._stopping:
                if needs_meter:  # before anything that happened is applied to it
                    try:
                        await self._money.restore(self.row, self._clock())
                        needs_meter = False
                    except DB_ERRORS as exc:
                        log.warning("reading not resumed yet: %s", exc, extra=self._log)
                        await asyncio.sleep(1.0)
                        continue
                timeout = max(0.0, next_tick - self._clock())
                try:
                    item: _Item | None = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    item = None
                try:
                    if item is not None:
                        await self._handle(item)
                    if self._clock() >= next_tick and self.status is not State.ENDED and not self._stopping:
                        next_tick = self._clock() + 1.0
                        await self._tick()
                except LeaseLost as exc:
                    log.warning("reading lease lost: %s", exc, extra=self._log)
                    await self._stop_lost()
                    if item is not None and item.done is not None and not item.done.done():
                        item.done.set_result(self.row)
                except DB_ERRORS as exc:
                    # The database hiccuped: keep the reading; the next tick (idempotent) tries again.
                    log.warning("reading runtime step failed: %s", exc, extra=self._log)
                    if item is not None and item.done is not None and not item.done.done():
                        item.done.set_exception(exc)
            self._answer_waiting()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reading runtime crashed", extra=self._log)
        finally:
            self.finished.set()
            if self._on_finished is not None:
                self._on_finished(self)

    def _answer_waiting(self) -> None:
        """After the end (or hand-over), whoever still waits on ``end()`` gets the row as it stands."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item.done is not None and not item.done.done():
                item.done.set_result(self.row)
            if item.kind == "attach" and item.tab is not None and self.status is State.ENDED:
                item.tab.send(end_message(self.row))

    async def _handle(self, item: _Item) -> None:
        if item.kind == "lost":
            raise LeaseLost("the node's keeper found the lease gone")
        if item.kind == "attach":
            assert item.role is not None and item.tab is not None
            self._tabs.attach(item.role, item.tab)
            if item.role is Actor.CLIENT and self._money.balance is None:
                await self._money.read_balance()
            if not await self._connectivity():
                item.tab.send(self._state_message(item.role))
        elif item.kind == "detach":
            assert item.role is not None and item.tab is not None
            if self._tabs.detach(item.role, item.tab):
                await self._connectivity()
        elif item.kind == "media":
            assert item.role is not None
            self._media[item.role] = bool(item.value)
            await self._connectivity()
        elif item.kind == "broadcast":
            self._tabs.send_all(item.value)
        elif item.kind == "end":
            assert item.role is not None and item.done is not None
            row = await self._end(item.role, str(item.value))
            if not item.done.done():
                item.done.set_result(row)
        elif item.kind == "hand-over":
            await self._hand_over()
            if item.done is not None and not item.done.done():
                item.done.set_result(None)

    def _is_connected(self, role: Actor) -> bool:
        signaled = self._tabs.has(role)
        return signaled and (self.session_type == "chat" or self._media[role])

    async def _connectivity(self) -> bool:
        """Apply a change of who is connected: start the reading, or tell the meter. True if anything changed
        (and the new state was pushed)."""
        now = self._clock()
        changed = False
        for role in ROLES:
            connected = self._is_connected(role)
            if connected == self._connected[role]:
                continue
            changed = True
            self._connected[role] = connected
            self._away_since[role] = None if connected or self.status is not State.ACTIVE else now
            if connected:
                self._back.add(role)
            log.info("participant %s", "connected" if connected else "disconnected",
                     extra={**self._log, "role": role.value})
            if self._watch is not None:
                self._watch.presence(Party(role.value), connected, now)
            if self._money.meter is not None and self.status is State.ACTIVE:
                await self._money.presence(role.value, connected, now)
        if self.status is State.ACCEPTED and all(self._connected.values()):
            await self._start(now)
        if changed and self.status is not State.ENDED:
            self._push_state()
        return changed

    async def _start(self, now: float) -> None:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                _, row = await apply(conn, self.session_id, Event.START, Actor.SYSTEM, epoch=self.lease.epoch)
        except asyncpg.UniqueViolationError:
            log.warning("reading cannot start: the reader is in another reading", extra=self._log)
            return
        self.row, self.status = row, State.ACTIVE
        if self._watch is not None:  # paid at booking: no meter, just the booked time
            self._watch.start(now)
            log.info("scheduled reading started", extra=self._log)
            self._tabs.send_all({"type": "start-session", "session": session_json(row)})
            return
        await self._money.begin(now)
        self._tabs.send_all({"type": "start-session", "session": session_json(row)})
        await self._money.connected_both(now)

    async def _tick(self) -> None:
        if not self.lease_valid:
            # The keeper could not renew in time: another node may own the reading from now on.
            if not self._fenced_logged:
                self._fenced_logged = True
                log.warning("reading lease ran out unrenewed: charging and pushing nothing until renewed",
                            extra=self._log)
            return
        self._fenced_logged = False
        now = self._clock()
        if self._watch is not None:
            await self._tick_scheduled(now)
            return
        if self.status is State.ACCEPTED:
            if now >= self._deadline:
                await self._end(Actor.SYSTEM, "not_started")
            return
        if self._money.meter is None or self.status is not State.ACTIVE:
            return
        reason = await self._money.tick(now)
        if reason is not None:
            await self._settle(reason, now)


    async def _tick_scheduled(self, now: float) -> None:
        assert self._watch is not None
        ending = self._watch.due(now)
        if ending is not None:
            await self._settle_scheduled(ending)
            return
        if self.status is State.ACTIVE:
            if self._watch.together():
                # The last moment the two were together is what a restart's refund is counted from.
                await recovery.record_heartbeat(self._pool, self.session_id, self._watch.together_seconds(now), 0,
                                                epoch=self.lease.epoch)
            self._push_state()

    async def _meter_ended(self, reason: str, now: float) -> None:
        await self._settle(self._resumed_reason(reason), now)

    def _warn(self, seconds_left: float) -> None:
        self._tabs.push(Actor.CLIENT, {"type": "notification", "kind": "low-balance", "sessionId": self.session_id,
                                       "secondsLeft": math.floor(seconds_left)})

    def _resumed_reason(self, reason: str) -> str:
        """A resumed reading whose parties never came back ended because of the restart, not a disconnect."""
        return "server_restart" if self.resumed and reason == "grace_expired" and not self._back else reason

    async def _end(self, actor: Actor, reason: str) -> asyncpg.Record:
        if self.status is State.ENDED:
            return self.row
        now = self._clock()
        if self._watch is not None:
            if actor is Actor.SYSTEM:  # nobody's doing: refunded like a restart it could not resume from
                ending = Ending(Why.RESTART, self._watch.wall(now), given_until=self._watch.given_until(now))
            else:
                ending = self._watch.ending_by(Party(actor.value), now)
            await self._settle_scheduled(ending)
        elif self._money.meter is not None and self.status is State.ACTIVE:
            await self._money.finish(now, reason)
            if self.status is not State.ENDED:  # a meter that ended without an End decision
                await self._settle(reason, now)
        else:
            await self._settle(reason, now)
        return self.row

    async def _settle(self, reason: str, now: float) -> None:
        """Write the end: refund the unused part, totals, state, availability, notifications; then tell everyone."""
        async with self._pool.acquire() as conn, conn.transaction():
            if self._money.meter is not None:
                await self._money.settle(conn, now)
            _, row = await apply(conn, self.session_id, Event.END, Actor.SYSTEM, reason=reason, epoch=self.lease.epoch)
            stored = await self._after_end(conn, row, "session-ended")
        await self._ended(row, stored)

    async def _settle_scheduled(self, ending: Ending) -> None:
        """End a scheduled reading by its rules: the refund, the slot, the state, in one transaction."""
        assert self._watch is not None
        decided: Outcome = outcome(self._watch.booking, ending, self._watch.policy)
        async with self._pool.acquire() as conn, conn.transaction():
            current = await fetch(conn, self.session_id, lock=True)
            if current["lease_epoch"] != self.lease.epoch or current["status"] in FINAL:
                raise LeaseLost(f"reading {self.session_id} is {current['status']} under epoch"
                                f" {current['lease_epoch']}")
            refunded = await scheduling.carry_out(conn, current, decided, self._metrics)
            cancel = decided.cancellation and current["status"] == State.ACCEPTED
            event, actor = (Event.CANCEL, Actor.CLIENT) if cancel else (Event.END, Actor.SYSTEM)
            sets = {"billable_seconds": math.ceil(self._watch.together_seconds(self._clock()))}
            _, row = await apply(conn, self.session_id, event, actor, reason=decided.reason, sets=sets,
                                 epoch=self.lease.epoch)
            stored = await self._after_end(conn, row, "session-cancelled" if cancel else "session-ended")
        log.info("scheduled reading ended", extra={**self._log, "reason": decided.reason, "refundedCents": refunded,
                                                   "slotFreed": decided.free_slot})
        await self._ended(row, stored)

    async def _after_end(self, conn: asyncpg.Connection, row: asyncpg.Record,
                         kind: str) -> list[tuple[str, dict[str, Any]]]:
        await set_reader_busy(conn, self.reader_id, False)
        if self._receipt is not None:
            await self._receipt(conn, row)
        return [await self._store_notification(conn, user_id, kind, {"session": session_json(row)})
                for user_id in (self.client_id, self.reader_id)]

    async def _ended(self, row: asyncpg.Record, stored: list[tuple[str, dict[str, Any]]]) -> None:
        """After the end committed: tell everyone, then close the room."""
        self.row, self.status = row, State(row["status"])
        log.info("reading ended", extra={**self._log, "reason": row["end_reason"],
                                         "billableSeconds": row["billable_seconds"],
                                         "chargedCents": row["charged_cents"]})
        self._tabs.send_all(end_message(row))
        self._deliver(stored)
        self.status = State.ENDED  # cancelled is as final for the runtime
        self._tabs.clear()
        await self._close_room()

    async def _close_room(self) -> None:
        try:
            await self._relay_close(self.session_id)
        except Exception as exc:  # the room may never have existed (chat) or is already gone
            log.debug("relay room not closed: %s", exc, extra=self._log)

    async def _hand_over(self) -> None:
        """Persist what the next owner restores from, then let the lease lapse now; the task stops."""
        now = self._clock()
        try:
            if self.status is State.ACTIVE and self._money.persistable:
                await self._money.persist(now)
            elif self.status is State.ACTIVE and self._watch is not None and self._watch.together():
                await recovery.record_heartbeat(self._pool, self.session_id, self._watch.together_seconds(now), 0,
                                                epoch=self.lease.epoch)
            released = await reading_leases.release(self._pool, self.lease)
        except LeaseLost:
            released = False
        log.info("reading handed over", extra={**self._log, "released": released})
        self._stopping = True

    async def _stop_lost(self) -> None:
        """The lease is someone else's (or the reading closed elsewhere): write nothing, say only what is true
        (the stored end, if it ended; else that it moved), close the room, stop."""
        self.lost = True
        self._stopping = True
        try:
            row = await fetch(self._pool, self.session_id)
        except Exception:  # the database is unreachable: say that it moved, which is all that is known
            row = None
        if row is not None and row["status"] in FINAL:
            self.row = row
            self._tabs.send_all(end_message(row))
        else:
            self._tabs.send_all(MOVED)
        self._tabs.clear()
        await self._close_room()

    # -- pushes ------------------------------------------------------------------------------------------

    def _state_message(self, role: Actor) -> dict[str, Any]:
        return state_message(role, session_id=self.session_id, status=self.status, now=self._clock(),
                             meter=self._money.meter, watch=self._watch, row=self.row, connected=self._connected,
                             balance=self._money.balance, earned=self._money.earned, grace_left=self._grace_left())

    def _grace_left(self) -> dict[Actor, int | None]:
        """Whole seconds each away side has left to come back before the reading ends (None: not away)."""
        now = self._clock()
        return {role: None if since is None else max(0, math.ceil(self._grace - (now - since)))
                for role, since in self._away_since.items()}

    def _push_state(self) -> None:
        if not self.lease_valid or self.lost:
            return
        for role in ROLES:
            if self._tabs.has(role):
                self._tabs.push(role, self._state_message(role))

    # -- views for tests and metrics ----------------------------------------------------------------------

    @property
    def meter(self) -> Meter | None:
        return self._money.meter

    @property
    def watch(self) -> ScheduledWatch | None:
        return self._watch

    def connected(self, role: Actor) -> bool:
        return self._connected[role]
