"""The readings running on this node: their runtimes and leases, the relay's events routed to them, the sweep.

One :class:`LiveReadings` per app (``app[LIVE_READINGS]``), built in ``create_app``'s clean-up context
after the relay. It subscribes to the relay's participant events once and routes each to the runtime
of its room (the room id is the reading id). A runtime only ever runs under a lease this node holds
(:mod:`api.reading_leases`); two loops keep that true:

- the **keeper**, every second, renews in one statement the leases of all the node's runtimes, and stops
  at once the runtime of any lease found lost;
- the **sweep**, every second, expires unanswered requests, starts the runtimes of scheduled readings
  whose window opened, and settles the active readings whose lease lapsed (their owner stopped), never
  one with a live runtime here, whatever its lease says.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from api import notifications, reading_chat, reading_leases, reading_recovery, scheduling
from api.appkeys import BILLING_METRICS, DATABASE, NODE_ID, SETTINGS
from api.reading_runtime import DB_ERRORS, ReadingRuntime
from api.reading_states import Actor, Event, State
from api.reading_store import apply, fetch, session_json, set_reader_busy
from relay import Relay

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
RENEW_SECONDS = 1.0


class LiveReadings:
    """The node's running readings, keyed by reading id."""

    def __init__(self, app: web.Application, relay: Relay, *, clock: Callable[[], float] = time.monotonic,
                 lease_clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self.relay = relay
        self._clock = clock
        self._lease_clock = lease_clock
        self._runtimes: dict[str, ReadingRuntime] = {}
        self._starting: dict[str, asyncio.Task[ReadingRuntime | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._settings = app[SETTINGS]
        self.node_id = app[NODE_ID]

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._app[DATABASE].pool

    @property
    def lease_seconds(self) -> float:
        return float(self._settings.reading_lease_seconds)

    # -- life of the registry -------------------------------------------------------------------------

    async def start(self) -> None:
        """Settle what a previous process left, resume accepted readings, and start routing, renewing and
        sweeping."""
        for event in ("participant-connected", "participant-disconnected", "participant-failed",
                      "participant-closed"):
            self.relay.on(event, self._on_participant)
        self.relay.on("chat-message", self._on_relay_chat)
        settled = await self.recover()
        if settled:
            log.info("interrupted readings settled", extra={"count": len(settled)})
        rows = await self._pool.fetch(
            "SELECT id::text FROM rtc_sessions WHERE status = 'accepted' AND mode = 'per_minute'")
        for row in rows:
            await self.run(row["id"])
        self._tasks = [asyncio.create_task(self._keep_loop(), name="reading leases"),
                       asyncio.create_task(self._sweep_loop(), name="readings sweep")]

    async def close(self) -> None:
        """Stop sweeping and settle every running reading now (reason ``server_shutdown``)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        runtimes = list(self._runtimes.values())
        ends = [asyncio.wait_for(rt.end(Actor.SYSTEM, "server_shutdown"), 10) for rt in runtimes]
        for result in await asyncio.gather(*ends, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("reading not settled at shutdown: %s", result)
        for runtime in runtimes:
            await runtime.close()
        self._runtimes.clear()

    # -- readings coming and going ---------------------------------------------------------------------

    def get(self, session_id: str) -> ReadingRuntime | None:
        runtime = self._runtimes.get(session_id)
        return None if runtime is None or runtime.finished.is_set() else runtime

    def wake(self) -> None:
        """Make every runtime look at its clock now (tests that drive a manual clock)."""
        for runtime in self._runtimes.values():
            runtime.wake()

    def __len__(self) -> int:
        return len(self._runtimes)

    async def accepted(self, row: asyncpg.Record) -> ReadingRuntime | None:
        """A reader accepted: the reading's runtime starts (here) waiting for both participants."""
        return await self.run(str(row["id"]))

    async def ensure(self, row: asyncpg.Record) -> ReadingRuntime | None:
        """The runtime of an accepted or active reading, started here if this node has none yet."""
        runtime = self.get(str(row["id"]))
        if runtime is None and row["status"] == State.ACCEPTED:
            runtime = await self.run(str(row["id"]))
        return runtime

    async def run(self, session_id: str) -> ReadingRuntime | None:
        """The reading's runtime on this node: the one running, or a new one under a lease taken now. None if
        the reading is closed or another owner's lease is live."""
        runtime = self.get(session_id)
        if runtime is not None:
            return runtime
        starting = self._starting.get(session_id)
        if starting is None:  # one start per reading at a time; concurrent callers share it
            starting = asyncio.create_task(self._take(session_id), name=f"start reading {session_id}")
            self._starting[session_id] = starting
            starting.add_done_callback(functools.partial(self._started, session_id))
        return await asyncio.shield(starting)

    def _started(self, session_id: str, _: asyncio.Task[ReadingRuntime | None]) -> None:
        self._starting.pop(session_id, None)

    async def _take(self, session_id: str) -> ReadingRuntime | None:
        sent = self._lease_clock()
        lease = await reading_leases.acquire(self._pool, session_id, self.node_id, self.lease_seconds)
        if lease is None:
            return None
        row = await fetch(self._pool, session_id)
        return self._spawn(row, lease, valid_until=sent + self.lease_seconds)

    def _spawn(self, row: asyncpg.Record, lease: reading_leases.Lease, *, valid_until: float) -> ReadingRuntime:
        settings = self._settings
        if row["mode"] == "scheduled":
            start_timeout = scheduling.start_timeout(settings, row)
        else:
            start_timeout = float(settings.request_expiry_seconds + settings.grace_seconds)
        runtime = ReadingRuntime(
            row, lease=lease, lease_valid_until=valid_until, pool=self._pool, relay_close=self._close_room,
            deliver=lambda stored: notifications.deliver(self._app, stored),
            store_notification=notifications.store, start_timeout=start_timeout,
            grace_seconds=float(settings.grace_seconds), clock=self._clock, lease_clock=self._lease_clock,
            on_finished=self._finished, metrics=self._app[BILLING_METRICS],
        )
        self._runtimes[runtime.session_id] = runtime
        runtime.start()
        log.info("reading running here", extra={"sessionId": runtime.session_id, "epoch": lease.epoch,
                                                "status": row["status"]})
        return runtime

    def _finished(self, runtime: ReadingRuntime) -> None:
        if self._runtimes.get(runtime.session_id) is runtime:
            del self._runtimes[runtime.session_id]

    async def _close_room(self, session_id: str) -> None:
        with contextlib.suppress(Exception):  # chat readings have no room; a closed relay has none left
            await self.relay.close_room(session_id)

    async def end(self, session_id: str, actor: Actor, reason: str) -> asyncpg.Record:
        """End a reading wherever it stands: through its runtime when running (it settles), else directly."""
        runtime = self.get(session_id)
        if runtime is not None:
            return await runtime.end(actor, reason)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await fetch(conn, session_id, lock=True)
            if row["status"] == State.ACTIVE:
                # Active with no runtime here: its owner stopped; settled from its last heartbeat once its
                # lease has lapsed (409 reading_busy before that).
                after, stored = await reading_recovery.settle(conn, session_id, reason)
            else:
                _, after = await apply(conn, session_id, Event.END, actor, reason=reason)
                await set_reader_busy(conn, str(after["reader_id"]), False)
                stored = [await notifications.store(conn, uid, "session-ended", {"session": session_json(after)})
                          for uid in (str(after["client_id"]), str(after["reader_id"]))]
        notifications.deliver(self._app, stored)
        return after

    # -- relay events ----------------------------------------------------------------------------------

    def _route(self, room_id: str, participant: str) -> tuple[ReadingRuntime, Actor] | None:
        runtime = self.get(room_id)
        if runtime is None:
            return None
        _, _, role = participant.rpartition(":")
        if role not in (Actor.CLIENT, Actor.READER):
            return None
        return runtime, Actor(role)

    def _on_participant(self, room_id: str, participant: str, at: float) -> None:
        routed = self._route(room_id, participant)
        if routed is not None:
            runtime, role = routed
            # Ask the relay for the current state rather than trusting the event alone: a re-join's
            # "disconnected" for the replaced connection can arrive after the new one connected.
            runtime.media_changed(role, self.relay.participant_state(participant) == "connected")

    def _on_relay_chat(self, room_id: str, participant: str, text: str, at: float) -> None:
        routed = self._route(room_id, participant)
        if routed is not None:
            runtime, role = routed
            task = asyncio.create_task(reading_chat.post(self._pool, runtime, role, text, relay_it=False))
            task.add_done_callback(_log_failure)

    # -- the keeper ------------------------------------------------------------------------------------

    async def _keep_loop(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await self.renew()
            except DB_ERRORS as exc:
                # The runtimes fence themselves when their leases run out by their own clock.
                log.warning("reading leases not renewed: %s", exc)

    async def renew(self) -> None:
        """Renew every lease the node's runtimes hold; stop the runtimes whose lease was lost."""
        runtimes = {sid: rt for sid, rt in self._runtimes.items() if not rt.finished.is_set()}
        if not runtimes:
            return
        sent = self._lease_clock()
        renewed, lost = await reading_leases.renew(self._pool, self.node_id,
                                                   {sid: rt.lease.epoch for sid, rt in runtimes.items()},
                                                   self.lease_seconds)
        for session_id in renewed:
            runtimes[session_id].lease_renewed(sent + self.lease_seconds)
        for session_id in lost:
            if runtimes[session_id].finished.is_set():
                continue  # it ended meanwhile: that is why the lease is gone
            log.warning("reading lease lost", extra={"sessionId": session_id,
                                                     "epoch": runtimes[session_id].lease.epoch})
            runtimes[session_id].lease_lost()

    # -- the sweep -------------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
                await self.recover()
            except DB_ERRORS as exc:
                log.warning("readings sweep failed: %s", exc)

    async def recover(self) -> list[str]:
        """Settle the active readings whose owner stopped (lease lapsed), never one running here."""
        return await reading_recovery.settle_interrupted(self._app, running=set(self._runtimes))

    async def sweep(self) -> None:
        """Expire unanswered requests; start the runtimes of scheduled readings whose window opened."""
        ids = await self._pool.fetch(
            "SELECT id FROM rtc_sessions WHERE status = 'requested' AND expires_at <= now() ORDER BY expires_at"
            " LIMIT 200")
        for record in ids:
            await self._expire(str(record["id"]))
        for row in await scheduling.due(self._pool, self._settings):
            if self.get(str(row["id"])) is None and row["status"] == State.ACCEPTED:
                await self.run(str(row["id"]))

    async def _expire(self, session_id: str) -> None:
        from api.errors import Conflict

        try:
            async with self._pool.acquire() as conn, conn.transaction():
                _, row = await apply(conn, session_id, Event.EXPIRE, Actor.SYSTEM, reason="expired")
                payload = {"session": session_json(row)}
                stored = [await notifications.store(conn, str(row["client_id"]), "session-expired", payload),
                          await notifications.store(conn, str(row["reader_id"]), "session-expired", payload)]
        except Conflict:
            return  # accepted, declined or cancelled in the meantime
        notifications.deliver(self._app, stored)
        log.info("reading request expired", extra={"sessionId": session_id})


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("relay chat not stored: %s", task.exception())


LIVE_READINGS = web.AppKey("live_readings", LiveReadings)
