"""The readings running on this node: their runtimes, the relay's events routed to them, expiry and recovery.

One :class:`LiveReadings` per app (``app[LIVE_READINGS]``), built in ``create_app``'s clean-up context
after the relay. It subscribes to the relay's participant events once and routes each to the runtime
of its room (the room id is the reading id), runs a one-second sweep that expires unanswered requests
and opens scheduled readings, and at start-up settles the readings a previous process left active.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from api import notifications, reading_chat, reading_recovery, scheduling
from api.appkeys import BILLING_METRICS, DATABASE, SETTINGS
from api.reading_runtime import ReadingRuntime
from api.reading_states import Actor, Event, State
from api.reading_store import COLUMNS, FROM, apply, fetch, session_json, set_reader_busy
from relay import Relay

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
# A reading whose heartbeat (written every second by its runtime) is older than this was left by a dead
# process: settled at start-up and by the sweep every RECOVERY_EVERY sweeps (a restart faster than this
# leaves the reading active for a few seconds more, never unsettled).
STALE_HEARTBEAT_SECONDS = 5
RECOVERY_EVERY = 5


class LiveReadings:
    """The node's running readings, keyed by reading id."""

    def __init__(self, app: web.Application, relay: Relay, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self.relay = relay
        self._clock = clock
        self._runtimes: dict[str, ReadingRuntime] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._settings = app[SETTINGS]

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._app[DATABASE].pool

    # -- life of the registry -------------------------------------------------------------------------

    async def start(self) -> None:
        """Settle what a previous process left, resume accepted readings, and start routing and sweeping."""
        for event in ("participant-connected", "participant-disconnected", "participant-failed",
                      "participant-closed"):
            self.relay.on(event, self._on_participant)
        self.relay.on("chat-message", self._on_relay_chat)
        settled = await reading_recovery.settle_interrupted(self._app, older_than=STALE_HEARTBEAT_SECONDS)
        if settled:
            log.info("interrupted readings settled", extra={"count": len(settled)})
        rows = await self._pool.fetch(
            f"SELECT {COLUMNS} FROM {FROM} WHERE s.status = 'accepted' AND s.mode = 'per_minute'")  # noqa: S608
        for row in rows:
            self._spawn(row)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="readings sweep")

    async def close(self) -> None:
        """Stop sweeping and settle every running reading now (reason ``server_shutdown``)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
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

    async def accepted(self, row: asyncpg.Record) -> ReadingRuntime:
        """A reader accepted: the reading's runtime starts waiting for both participants."""
        return self.get(str(row["id"])) or self._spawn(row)

    async def ensure(self, row: asyncpg.Record) -> ReadingRuntime | None:
        """The runtime of an accepted or active reading, started here if this node has none yet."""
        runtime = self.get(str(row["id"]))
        if runtime is None and row["status"] == State.ACCEPTED:
            runtime = self._spawn(row)
        return runtime

    def _spawn(self, row: asyncpg.Record) -> ReadingRuntime:
        settings = self._settings
        if row["mode"] == "scheduled":
            start_timeout = scheduling.start_timeout(settings, row)
        else:
            start_timeout = float(settings.request_expiry_seconds + settings.grace_seconds)
        runtime = ReadingRuntime(
            row, pool=self._pool, relay_close=self._close_room,
            deliver=lambda stored: notifications.deliver(self._app, stored),
            store_notification=notifications.store, start_timeout=start_timeout,
            grace_seconds=float(settings.grace_seconds), clock=self._clock, on_finished=self._finished,
            metrics=self._app[BILLING_METRICS],
        )
        self._runtimes[runtime.session_id] = runtime
        runtime.start()
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
                # Active with no runtime here: its process died; settle it from its last heartbeat.
                after, stored = await reading_recovery.settle(conn, session_id, reason, self._app[BILLING_METRICS])
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

    # -- the sweep -------------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            rounds += 1
            try:
                await self.sweep()
                if rounds % RECOVERY_EVERY == 0:
                    await reading_recovery.settle_interrupted(self._app, older_than=STALE_HEARTBEAT_SECONDS)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("readings sweep failed: %s", exc)

    async def sweep(self) -> None:
        """Expire unanswered requests; start the runtimes of scheduled readings whose window opened."""
        ids = await self._pool.fetch(
            "SELECT id FROM rtc_sessions WHERE status = 'requested' AND expires_at <= now() ORDER BY expires_at"
            " LIMIT 200")
        for record in ids:
            await self._expire(str(record["id"]))
        for row in await scheduling.due(self._pool, self._settings):
            if self.get(str(row["id"])) is None:
                self._spawn(row)

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
