"""The readings running on this node: their runtimes and leases, the relay's events routed to them, the sweep.

One :class:`LiveReadings` per app (``app[LIVE_READINGS]``), built in ``create_app``'s clean-up context
after the relay. It subscribes to the relay's participant events once and routes each to the runtime
of its room (the room id is the reading id). A runtime only ever runs under a lease this node holds
(:mod:`api.readings.leases`); two loops keep that true:

- the **keeper**, every second, renews in one statement the leases of all the node's runtimes, and stops
  at once the runtime of any lease found lost;
- the **sweep**, every second, expires unanswered requests and ADOPTS the readings that should be running
  and whose lease is free: accepted ones, booked ones whose window opened, and active ones whose owner
  stopped (this node's previous process, or another node). An adopted reading gets a new runtime under
  the next epoch, restored from its persisted meter state with nobody connected: if its parties re-join
  within the grace period it continues (the outage unbilled), otherwise it ends and settles by its rules.
  A reading with a live runtime here is never adopted, whatever its lease says.

Start-up adopts at once what the previous process left (before the server answers); shut-down hands every
running reading over (meter state persisted, lease released), so the next process resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

import asyncpg
from aiohttp import web

from api.cluster import CLUSTER
from api.cluster.link import ClusterUnavailable
from api.core.errors import Conflict
from api.core.keys import BILLING_METRICS, DATABASE, NODE_ID, SETTINGS
from api.core.periodic import Periodic
from api.readings import leases as reading_leases
from api.readings import online, receipts, scheduling
from api.readings.chat import ReadingChat
from api.readings.homes import ReadingHomes
from api.readings.runtime import DB_ERRORS, ReadingRuntime
from api.readings.states import FINAL, Actor, Event, State
from api.readings.store import apply, fetch, session_json
from api.realtime import notifications
from relay import Relay, events
from relay.events import ChatReceived, ParticipantChanged

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
RENEW_SECONDS = 1.0
HAND_OVER_SECONDS = 10.0


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
        # A failed renewal is logged and tried again: the runtimes fence themselves when their leases run out by
        # their own clock.
        self.renewal = Periodic("reading leases", self.renew, interval=RENEW_SECONDS, expected=DB_ERRORS)
        self._sweeping = Periodic("readings sweep", self.sweep, interval=SWEEP_SECONDS, expected=DB_ERRORS)
        self._settings = app[SETTINGS]
        self.chat = ReadingChat(app, relay, clock=clock)  # readings' chat, from sockets and data channels
        self.node_id = app[NODE_ID]
        node = app.get(CLUSTER)
        # In a cluster: where each reading runs (None: one node, every reading runs here).
        self.homes = ReadingHomes(self, node) if node is not None else None
        self._metrics = node.metrics if node is not None else None
        self._closing = False

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._app[DATABASE].pool

    @property
    def pool(self) -> asyncpg.Pool:
        return self._app[DATABASE].pool

    @property
    def lease_seconds(self) -> float:
        return float(self._settings.reading_lease_seconds)

    # -- life of the registry -------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt what a previous process left, and start routing, renewing and sweeping."""
        events.subscribe(self.relay, ParticipantChanged, self._on_participant)
        events.subscribe(self.relay, ChatReceived, self._on_relay_chat)
        adopted = await self.adopt()
        if adopted:
            log.info("readings adopted at start-up", extra={"count": len(adopted), "sessionIds": adopted})
        self.renewal.start()
        self._sweeping.start()

    async def close(self) -> None:
        """Stop sweeping and hand every running reading over: its state persisted, its lease released (and, in a
        cluster, its room let go, so the next join places it on another node). Safe to call twice (a drain, then
        the shutdown)."""
        self._closing = True
        if self.homes is not None:
            await self.homes.close()  # no more starts asked by other nodes
        for task in self._starting.values():
            task.cancel()
        await asyncio.gather(self.renewal.stop(), self._sweeping.stop(), *self._starting.values(),
                             return_exceptions=True)
        await self.chat.close()
        runtimes = list(self._runtimes.values())
        handed = [asyncio.wait_for(rt.hand_over(), HAND_OVER_SECONDS) for rt in runtimes]
        for result in await asyncio.gather(*handed, return_exceptions=True):
            if isinstance(result, BaseException):
                log.warning("reading not handed over at shutdown (its lease will lapse): %s", result)
        for runtime in runtimes:
            await runtime.close()
        self._runtimes.clear()
        if self.homes is not None and runtimes:
            await self.homes.let_go([rt.session_id for rt in runtimes])

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

    async def place(self, session_id: str) -> str | None:
        """Before a reader's accept commits: the node the reading will run on (None: here, on one node).
        In a cluster this needs Redis, so an accept while it does not answer is refused (503) unchanged."""
        return None if self.homes is None else await self.homes.home(session_id)

    async def accepted(self, row: asyncpg.Record, home: str | None = None) -> None:
        """A reader accepted: the reading's runtime starts (here, or on ``home``) waiting for both participants."""
        if self.homes is not None and home is not None:
            await self.homes.started(row, home)
        else:
            await self.run(str(row["id"]))

    async def run(self, session_id: str, *, wait: float = 0.0) -> ReadingRuntime | None:
        """The reading's runtime on this node: the one running, or a new one under a lease taken now. None if
        the reading is closed, or another owner's lease is live (waiting up to ``wait`` seconds for it to
        lapse: an owner that died leaves one for at most the lease's length)."""
        deadline = self._lease_clock() + wait
        while True:
            runtime = self.get(session_id)
            if runtime is not None:
                return runtime
            if self._closing:
                return None  # shutting down (or draining): the reading goes to another node
            starting = self._starting.get(session_id)
            if starting is None:  # one start per reading at a time; concurrent callers share it
                starting = asyncio.create_task(self._take(session_id), name=f"start reading {session_id}")
                self._starting[session_id] = starting
                starting.add_done_callback(functools.partial(self._started, session_id))
            runtime = await asyncio.shield(starting)
            if runtime is not None or self._lease_clock() >= deadline:
                return runtime
            row = await fetch(self._pool, session_id)
            if row["status"] not in (State.ACCEPTED, State.ACTIVE):
                return None
            await asyncio.sleep(min(0.5, max(0.0, deadline - self._lease_clock())))

    def _started(self, session_id: str, _: asyncio.Task[ReadingRuntime | None]) -> None:
        self._starting.pop(session_id, None)

    async def _take(self, session_id: str) -> ReadingRuntime | None:
        sent = self._lease_clock()
        lease = await reading_leases.acquire(self._pool, session_id, self.node_id, self.lease_seconds)
        if lease is None:
            return None
        row = await fetch(self._pool, session_id)
        # A reading another owner ran (and left) resumes: restored from its row, nobody connected yet.
        resumed = lease.taken_from is not None or row["status"] == State.ACTIVE
        if self._metrics is not None and lease.taken_from not in (None, self.node_id):
            self._metrics.adoptions.inc()
        return self._spawn(row, lease, valid_until=sent + self.lease_seconds, resumed=resumed)

    def _spawn(self, row: asyncpg.Record, lease: reading_leases.Lease, *, valid_until: float,
               resumed: bool) -> ReadingRuntime:
        settings = self._settings
        runtime = ReadingRuntime(
            row, lease=lease, lease_valid_until=valid_until, resumed=resumed, pool=self._pool,
            relay_close=self._close_room, deliver=lambda stored: notifications.deliver(self._app, stored),
            store_notification=notifications.store,
            start_timeout=float(settings.request_expiry_seconds + settings.grace_seconds),
            grace_seconds=float(settings.grace_seconds), policy=scheduling.policy(settings), clock=self._clock,
            lease_clock=self._lease_clock, on_finished=self._finished, metrics=self._app[BILLING_METRICS],
            receipt=functools.partial(receipts.reading_ended, public_url=settings.public_url),
        )
        self._runtimes[runtime.session_id] = runtime
        runtime.start()
        log.info("reading running here", extra={"sessionId": runtime.session_id, "epoch": lease.epoch,
                                                "resumed": resumed, "status": row["status"]})
        return runtime

    def _finished(self, runtime: ReadingRuntime) -> None:
        if self._runtimes.get(runtime.session_id) is runtime:
            del self._runtimes[runtime.session_id]
            if self.homes is not None:
                self.homes.forget(runtime.session_id)

    async def _close_room(self, session_id: str) -> None:
        with contextlib.suppress(Exception):  # chat readings have no room; a closed relay has none left
            await self.relay.close_room(session_id)

    async def end(self, session_id: str, actor: Actor, reason: str, *, here: bool = False) -> asyncpg.Record:
        """End a reading (a participant's REST call or cancel) through its one owner: the runtime here, or
        one started for it now (an accepted or booked reading, or one whose owner stopped). In a cluster, on the
        reading's node (unless ``here``: that node asked)."""
        row = await fetch(self._pool, session_id)
        if row["status"] in FINAL or row["status"] == State.REQUESTED:
            async with self._pool.acquire() as conn, conn.transaction():  # the state machine says why not
                _, after = await apply(conn, session_id, Event.END, actor, reason=reason)
            return after
        if self.homes is not None and not here:
            ended = await self.homes.end(session_id, actor, reason)
            if ended is not None:
                return ended
        runtime = await self.run(session_id, wait=self.lease_seconds + 1)
        if runtime is None:
            row = await fetch(self._pool, session_id)
            if row["status"] in FINAL:
                return row
            raise Conflict("this reading is being run by a server right now; try again", code="reading_busy")
        return await runtime.end(actor, reason)

    # -- relay events ----------------------------------------------------------------------------------

    def _route(self, room_id: str, participant: str) -> tuple[ReadingRuntime, Actor] | None:
        runtime = self.get(room_id)
        if runtime is None:
            return None
        _, _, role = participant.rpartition(":")
        if role not in (Actor.CLIENT, Actor.READER):
            return None
        return runtime, Actor(role)

    def _on_participant(self, event: ParticipantChanged) -> None:
        routed = self._route(event.scope_id, event.participant_id)
        if routed is not None:
            runtime, role = routed
            # Ask the relay for the current state rather than trusting the event alone: a re-join's
            # "disconnected" for the replaced connection can arrive after the new one connected.
            runtime.media_changed(role, self.relay.participant_state(event.participant_id) == "connected")

    def _on_relay_chat(self, message: ChatReceived) -> None:
        routed = self._route(message.scope_id, message.participant_id)
        if routed is not None:
            runtime, role = routed
            self.chat.from_data_channel(runtime, role, message.text)

    # -- the keeper ------------------------------------------------------------------------------------

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
        if self.homes is not None:
            await self.homes.claim(sorted(renewed))
        for session_id in lost:
            if runtimes[session_id].finished.is_set():
                continue  # it ended meanwhile: that is why the lease is gone
            log.warning("reading lease lost", extra={"sessionId": session_id,
                                                     "epoch": runtimes[session_id].lease.epoch})
            runtimes[session_id].lease_lost()

    # -- the sweep -------------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Expire unanswered requests; adopt the readings that should run and have no owner."""
        ids = await self._pool.fetch(
            "SELECT id FROM rtc_sessions WHERE status = 'requested' AND expires_at <= now() ORDER BY expires_at"
            " LIMIT 200")
        for record in ids:
            await self._expire(str(record["id"]))
        await self.adopt()

    async def adopt(self) -> list[str]:
        """Start a runtime for every reading that should be running and whose lease is free, except those
        running here already. Returns the ids adopted."""
        candidates = await reading_leases.adoptable(
            self._pool, early_join_seconds=self._settings.schedule_early_join_seconds)
        # A live runtime here is the owner, whatever the lease says (it is being renewed).
        candidates = [sid for sid in candidates if self.get(sid) is None]
        if self.homes is not None and candidates:
            try:  # in a cluster, each free reading is adopted by the node it is placed on
                candidates = await self.homes.placed_here(candidates)
            except ClusterUnavailable:
                return []  # where they belong is unknown until Redis answers: none is adopted meanwhile
        adopted = []
        for session_id in candidates:
            try:
                if await self.run(session_id) is not None:
                    adopted.append(session_id)
            except DB_ERRORS as exc:
                log.warning("reading not adopted: %s", exc, extra={"sessionId": session_id})
        return adopted

    async def _expire(self, session_id: str) -> None:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                _, row = await apply(conn, session_id, Event.EXPIRE, Actor.SYSTEM, reason="expired")
                # Nobody was there to answer: the reader is shown away until they are back.
                await online.missed_request(conn, str(row["reader_id"]))
                payload = {"session": session_json(row)}
                stored = [await notifications.store(conn, str(row["client_id"]), "session-expired", payload),
                          await notifications.store(conn, str(row["reader_id"]), "session-expired",
                                                    {**payload, "away": True})]
        except Conflict:
            return  # accepted, declined or cancelled in the meantime
        notifications.deliver(self._app, stored)
        log.info("reading request expired", extra={"sessionId": session_id})


LIVE_READINGS = web.AppKey("live_readings", LiveReadings)

