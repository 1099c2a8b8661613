"""Where each reading runs in a cluster: its room's home node, and asking that node to run or end it.

A reading's room is ``reading:<id>`` in the cluster's room map (:mod:`api.cluster.placement`). It is placed
when the reader accepts (before the accept commits, so a Redis that does not answer refuses the accept with a
503 rather than leaving an accepted reading nobody runs), on the least-loaded serving node; that node starts
its runtime at once (``reading-run`` on the bus) or, if the message is lost, at its next sweep. Sockets join
it there through the signal bridge; an end asked on another node is carried out there (``reading-end``).

The lease (api/readings/leases.py) stays the truth about who runs a reading: a reading whose lease a live node
holds is placed on that node, a node adopts only the free readings placed on it, and a node that runs a
reading claims its room in the map every two seconds, so the map follows the leases (and comes back by itself
after Redis restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, Protocol

import asyncpg

from api.cluster.bus import NodeGone, RemoteError
from api.cluster.link import ClusterUnavailable
from api.cluster.node import ClusterNode
from api.cluster.placement import Placement
from api.core.errors import ApiError, Conflict
from api.core.validation import canonical_uuid
from api.readings.states import Actor, State
from api.readings.store import fetch
from api.realtime.socket import SignalingSocket

log = logging.getLogger(__name__)

RUN, END = "reading-run", "reading-end"
CLAIM_SECONDS = 2.0


class Runner(Protocol):
    """The node's live readings, as far as their homes go (:class:`api.readings.live.LiveReadings`)."""

    @property
    def pool(self) -> asyncpg.Pool: ...

    def get(self, session_id: str) -> object | None: ...

    async def run(self, session_id: str, *, wait: float = 0.0) -> object | None: ...

    async def end(self, session_id: str, actor: Actor, reason: str, *, here: bool = False) -> asyncpg.Record: ...


def room(session_id: str) -> str:
    return f"reading:{session_id}"


class ReadingHomes:
    """The cluster side of the node's live readings (see the module docstring)."""

    def __init__(self, live: Runner, node: ClusterNode) -> None:
        self._live = live
        self._node = node
        self.placement = Placement(node)
        self._claimed_at = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        node.bus.on(RUN, self._on_run)
        node.bus.serve(END, self._on_end)

    @property
    def node_id(self) -> str:
        return self._node.node_id

    async def home(self, session_id: str, *, gone: frozenset[str] = frozenset()) -> str:
        """The node the reading runs on (placing it now if it has none, or its node is gone)."""
        if self._live.get(session_id) is not None:
            return self.node_id  # running here: this node holds its lease, whatever Redis says
        owner = await self._live.pool.fetchval(
            "SELECT lease_owner::text FROM rtc_sessions WHERE id = $1 AND lease_expires_at > now()", session_id)
        if owner is not None and owner not in gone and (await self._node.bus.listening([owner]))[owner]:
            # A live lease held by a node that is listening: the reading runs there, whatever the map says
            # (the map may be younger than the lease: Redis restarted, the node not yet registered again).
            await self.placement.claim_for(room(session_id), owner)
            return str(owner)
        return await self.placement.home(room(session_id), sticky=owner, gone=gone)

    async def home_for_join(self, socket: SignalingSocket, message: dict[str, Any],
                            gone: frozenset[str]) -> str | None:
        """Where a ``join {sessionId}`` goes; None (here) for whatever the readings channel itself refuses (a bad
        id, someone else's reading, one not open), so that its error is the one the browser gets."""
        session_id = canonical_uuid(message.get("sessionId"))
        if session_id is None:
            return None
        try:
            row = await fetch(self._live.pool, session_id)
        except ApiError:
            return None
        if socket.user_id not in (str(row["client_id"]), str(row["reader_id"])):
            return None
        if row["status"] not in (State.ACCEPTED, State.ACTIVE):
            return None
        return await self.home(session_id, gone=gone)

    async def started(self, row: asyncpg.Record, home: str) -> None:
        """The reader accepted a reading placed on ``home``: have that node run it now."""
        session_id = str(row["id"])
        if home == self.node_id:
            await self._live.run(session_id)
            return
        with contextlib.suppress(ClusterUnavailable):
            if await self._node.bus.send(home, RUN, {"sessionId": session_id}):
                return
        log.warning("the accepted reading's node did not hear of it; its sweep will start it",
                    extra={"sessionId": session_id, "home": home})

    async def end(self, session_id: str, actor: Actor, reason: str) -> asyncpg.Record | None:
        """End the reading on its node if that is another; None if it runs (or is to run) here."""
        home = await self.home(session_id)
        if home == self.node_id:
            return None
        try:
            await self._node.bus.request(home, END, {"sessionId": session_id, "actor": actor.value,
                                                     "reason": reason})
        except NodeGone:
            raise Conflict("this reading's server just stopped; try again in a moment", code="reading_busy") \
                from None
        except RemoteError as exc:
            error = ApiError(exc.message, code=exc.code)
            error.status = exc.status if 400 <= exc.status < 500 else 503
            raise error from None
        except TimeoutError:
            raise Conflict("this reading's server did not answer; try again", code="reading_busy") from None
        return await fetch(self._live.pool, session_id)

    async def placed_here(self, session_ids: list[str]) -> list[str]:
        """Of these free readings, the ones whose room is (now) placed on this node."""
        mine = []
        for session_id in session_ids:
            if await self.placement.home(room(session_id)) == self.node_id:
                mine.append(session_id)
        return mine

    async def claim(self, session_ids: list[str]) -> None:
        """Record this node as the home of the readings it runs (every ``CLAIM_SECONDS``)."""
        now = time.monotonic()
        if now - self._claimed_at < CLAIM_SECONDS:
            return
        self._claimed_at = now
        with contextlib.suppress(ClusterUnavailable):
            await self.placement.claim([room(sid) for sid in session_ids])

    async def let_go(self, session_ids: list[str]) -> None:
        """This node handed these readings over (it is stopping): their rooms' entries go now, so their next
        join places them on a serving node, which adopts them at once (their leases were released)."""
        with contextlib.suppress(ClusterUnavailable):
            for session_id in session_ids:
                await self.placement.forget(room(session_id))

    def forget(self, session_id: str) -> None:
        """The reading stopped running here: its room's entry goes (if it still names this node)."""
        task = asyncio.create_task(self._forget(session_id), name=f"forget room {session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forget(self, session_id: str) -> None:
        with contextlib.suppress(ClusterUnavailable):
            await self.placement.forget(room(session_id))

    def _on_run(self, sender: str, body: dict[str, Any]) -> None:
        session_id = str(body.get("sessionId"))
        task = asyncio.create_task(self._run(session_id), name=f"run reading {session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, session_id: str) -> None:
        try:
            await self._live.run(session_id)
        except Exception as exc:  # the sweep tries again every second
            log.warning("reading not started on request: %s", exc, extra={"sessionId": session_id})

    async def _on_end(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        session_id = str(uuid.UUID(str(body.get("sessionId"))))
        row = await self._live.end(session_id, Actor(str(body.get("actor"))), str(body.get("reason"))[:64],
                                   here=True)
        return {"status": str(row["status"])}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
