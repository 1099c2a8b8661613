"""Where each live stream runs in a cluster: its home node holds its publisher and every viewer's peer
connection (its room, ``stream:<id>``, in the cluster's room map), and what happens to it on other nodes (a gift
paid, the end, its viewer count) travels over the bus.

A stream is placed when it goes live (the home runs its "publisher away" timer) or when someone first joins it;
its sockets join through the signal bridge from whatever node holds them. A stream whose home is gone (or that a
restarted node left live) is adopted by the node it is placed on next (:meth:`StreamHomes.adopt_orphans`, every
few seconds on every node): the stream then ends unless its reader comes back within the grace period, as on
one node. A viewer's media may be answered by another node's relay, pulling the stream once from the home
(:mod:`api.streams.edges`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api.cluster.link import ClusterUnavailable
from api.cluster.node import ClusterNode
from api.cluster.placement import Placement
from api.core.errors import ApiError
from api.core.keys import DATABASE
from api.core.periodic import Periodic
from api.core.validation import canonical_uuid
from api.realtime.socket import SignalingSocket
from api.streams.hub import StreamHub
from api.streams.store import fetch_stream

log = logging.getLogger(__name__)

STARTED, ENDED, GIFT, VIEWERS = "stream-started", "stream-ended", "stream-gift", "stream-viewers"
ADOPT_SECONDS = 5.0
CLAIM_SECONDS = 2.0


def room(stream_id: str) -> str:
    return f"stream:{stream_id}"


class StreamHomes:
    """The cluster side of the node's streams (the hub's :class:`api.streams.hub.HubPeers`)."""

    def __init__(self, app: web.Application, node: ClusterNode, hub: StreamHub,
                 wait_for_publisher: Callable[[str], Awaitable[None]]) -> None:
        """:param wait_for_publisher: ends the stream unless its publisher joins within the grace period (the
        streams channel's ``stream_started``), run on the stream's home."""
        self._app = app
        self._node = node
        self._hub = hub
        self._wait_for_publisher = wait_for_publisher
        self.placement = Placement(node)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keeping = Periodic("stream homes", self._keep, interval=CLAIM_SECONDS)
        self._adopt_at = 0.0
        node.bus.on(STARTED, self._on_started)
        node.bus.on(ENDED, self._on_ended)
        node.bus.on(GIFT, self._on_gift)
        node.bus.on(VIEWERS, self._on_viewers)

    @property
    def node_id(self) -> str:
        return self._node.node_id

    async def home_of(self, socket: SignalingSocket, message: dict[str, Any], gone: frozenset[str]) -> str | None:
        """Where a ``join {streamId}`` goes; None (here) for what the streams channel refuses itself."""
        stream_id = canonical_uuid(message.get("streamId"))
        if stream_id is None:
            return None
        try:
            row = await fetch_stream(self._app[DATABASE].pool, stream_id)
        except ApiError:
            return None
        if row["status"] != "live":
            return None
        if self._hub.audience(stream_id) is not None:
            return self.node_id  # its sockets are here: this is its home
        return await self.placement.home(room(stream_id), gone=gone)

    # -- the hub's peers -----------------------------------------------------------------------------------

    async def started(self, stream_id: str) -> bool:
        try:
            home = await self.placement.home(room(stream_id))
        except ClusterUnavailable:
            return True  # placed here for now; claimed when Redis answers
        if home == self.node_id:
            return True
        with contextlib.suppress(ClusterUnavailable):
            if await self._node.bus.send(home, STARTED, {"streamId": stream_id}):
                return False
        return True  # its home did not hear it: this node watches for the publisher instead

    async def ended(self, stream_id: str) -> None:
        with contextlib.suppress(ClusterUnavailable):
            await self._node.bus.broadcast(ENDED, {"streamId": stream_id})
            await self.placement.forget(room(stream_id))

    async def gift_sent(self, stream_id: str, gift: dict[str, Any]) -> None:
        with contextlib.suppress(ClusterUnavailable):
            await self._node.bus.broadcast(GIFT, {"streamId": stream_id, "gift": gift})

    def viewers(self, stream_id: str, count: int) -> None:
        self._spawn(self._broadcast_viewers(stream_id, count), "stream viewers")

    async def _broadcast_viewers(self, stream_id: str, count: int) -> None:
        with contextlib.suppress(ClusterUnavailable):
            await self._node.bus.broadcast(VIEWERS, {"streamId": stream_id, "count": count})

    # -- what other nodes say ------------------------------------------------------------------------------

    def _on_started(self, sender: str, body: dict[str, Any]) -> None:
        self._spawn(self._wait_for_publisher(str(body.get("streamId"))), "stream started")

    def _on_ended(self, sender: str, body: dict[str, Any]) -> None:
        if sender != self.node_id:
            self._spawn(self._hub.ended(str(body.get("streamId")), here=True), "stream ended")

    def _on_gift(self, sender: str, body: dict[str, Any]) -> None:
        gift = body.get("gift")
        if sender != self.node_id and isinstance(gift, dict):
            self._spawn(self._hub.gift_sent(str(body.get("streamId")), gift, here=True), "stream gift")

    def _on_viewers(self, sender: str, body: dict[str, Any]) -> None:
        if sender != self.node_id:
            self._hub.counted_elsewhere(str(body.get("streamId")), int(body.get("count") or 0))

    # -- homes kept true -----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.adopt_orphans()
        self._adopt_at = time.monotonic() + ADOPT_SECONDS
        self._keeping.start()

    async def adopt_orphans(self) -> list[str]:
        """Live streams with no live home are placed again; those placed here wait for their reader (the grace
        period) as streams a restart left do on one node. Returns the ids adopted."""
        rows = await self._app[DATABASE].pool.fetch("SELECT id FROM streams WHERE status = 'live'")
        adopted = []
        try:
            for row in rows:
                stream_id = str(row["id"])
                if self._hub.audience(stream_id) is not None:
                    continue
                recorded = await self.placement.recorded(room(stream_id))
                if recorded == self.node_id:
                    continue  # ours already (its timer runs, or its sockets are here)
                if recorded is not None and (await self._node.registry.alive([recorded]))[recorded]:
                    continue
                if await self.placement.home(room(stream_id)) == self.node_id:
                    await self._wait_for_publisher(stream_id)
                    adopted.append(stream_id)
        except ClusterUnavailable:
            return adopted  # the rest when Redis answers
        if adopted:
            log.info("live streams adopted; waiting for their readers", extra={"count": len(adopted)})
        return adopted

    async def _keep(self) -> None:
        """Every few seconds: claim the rooms of the streams live here, and now and then adopt orphans."""
        with contextlib.suppress(ClusterUnavailable):
            await self.placement.claim([room(sid) for sid in self._hub.live_here()])
        if time.monotonic() >= self._adopt_at:
            self._adopt_at = time.monotonic() + ADOPT_SECONDS
            await self.adopt_orphans()

    async def let_go(self) -> None:
        """This node is stopping: the streams it holds lose their home here, so their next join (the publisher's
        and viewers' browsers reconnecting) places them on a serving node."""
        with contextlib.suppress(ClusterUnavailable):
            for stream_id in self._hub.live_here():
                await self.placement.forget(room(stream_id))

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._keeping.stop(), *self._tasks, return_exceptions=True)
