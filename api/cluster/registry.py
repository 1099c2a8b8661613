"""The node registry: every node says who it is, whether it takes new rooms, and how loaded it is, every two
seconds; a node not heard from for five seconds is gone.

One Redis key per node (``<prefix>node:<id>``, a JSON :class:`NodeInfo`) written with a five-second expiry,
so a node that dies (kill -9, a lost machine) disappears by itself; the set ``<prefix>nodes`` lists the ids
ever registered and is pruned of the expired ones as it is read. This is LiveKit's node registry
(``pkg/routing``: a node's stats and state refreshed on a ticker, nodes without a recent refresh ignored),
with Redis's key expiry as the ticker's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable

from api.cluster.link import REDIS_ERRORS, ClusterUnavailable, RedisLink
from api.cluster.metrics import ClusterMetrics
from api.cluster.node_info import DRAINING, SERVING, Load, NodeInfo
from api.core.times import now_iso

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
NODE_TIMEOUT_SECONDS = 5.0


class Registry:
    """This node's entry in the registry, refreshed on a timer, and the view of every live node.

    :param load: what this node holds now; called at every heartbeat.
    """

    def __init__(self, link: RedisLink, node_id: str, *, name: str, load: Callable[[], Load],
                 metrics: ClusterMetrics, heartbeat: float = HEARTBEAT_SECONDS,
                 timeout: float = NODE_TIMEOUT_SECONDS) -> None:
        self.link = link
        self.node_id = node_id
        self.name = name
        self.state = SERVING
        self._load = load
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._started_at = now_iso()
        self._task: asyncio.Task[None] | None = None
        self.seen: list[NodeInfo] = []  # every live node as of the last heartbeat (this one included)
        self._listeners: list[Callable[[list[NodeInfo]], None]] = []

    @property
    def _nodes(self) -> str:
        return self.link.key("nodes")

    def _node(self, node_id: str) -> str:
        return self.link.key("node", node_id)

    def me(self) -> NodeInfo:
        return NodeInfo(self.node_id, self.name, self.state, self._load(), self._started_at, now_iso(),
                        host=socket.gethostname(), pid=os.getpid())

    def on_heartbeat(self, listener: Callable[[list[NodeInfo]], None]) -> None:
        """Call ``listener(live nodes)`` after every heartbeat that could read the registry."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Register now (a Redis that does not answer yet is retried by the timer) and keep the entry fresh."""
        with contextlib.suppress(ClusterUnavailable):
            await self.beat()
        self._task = asyncio.create_task(self._run(), name="cluster heartbeat")

    async def beat(self) -> list[NodeInfo]:
        """Write this node's entry (expiring unless refreshed) and read every live node's."""
        me = self.me()
        pipe = self.link.redis.pipeline(transaction=True)
        pipe.set(self._node(self.node_id), json.dumps(me.json()), px=int(self._timeout * 1000))
        pipe.sadd(self._nodes, self.node_id)
        try:
            await self.link.call(pipe.execute())
        except ClusterUnavailable:
            self._metrics.heartbeats.labels("failed").inc()
            self._metrics.redis_up.set(0)
            raise
        self._metrics.heartbeats.labels("ok").inc()
        self._metrics.redis_up.set(1)
        nodes = await self.nodes()
        self.seen = nodes
        self._metrics.saw(nodes)
        for listener in self._listeners:
            try:
                listener(nodes)
            except Exception:
                log.exception("registry listener failed")
        return nodes

    async def nodes(self) -> list[NodeInfo]:
        """Every live node (heard from within the timeout), by id; the expired are pruned from the set."""
        ids = sorted(str(i) for i in await self.link.call(self.link.redis.smembers(self._nodes)))
        if not ids:
            return []
        raws = await self.link.call(self.link.redis.mget([self._node(i) for i in ids]))
        gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            with contextlib.suppress(ClusterUnavailable):
                await self.link.call(self.link.redis.srem(self._nodes, *gone))
        return [info for raw in raws if raw is not None and (info := NodeInfo.parse(str(raw))) is not None]

    async def alive(self, node_ids: list[str]) -> dict[str, bool]:
        """Which of these nodes are live right now (one round trip)."""
        if not node_ids:
            return {}
        raws = await self.link.call(self.link.redis.mget([self._node(i) for i in node_ids]))
        return {i: raw is not None for i, raw in zip(node_ids, raws, strict=True)}

    async def drain(self) -> None:
        """Take no new rooms from now on: say so at once rather than at the next heartbeat."""
        self.state = DRAINING
        with contextlib.suppress(ClusterUnavailable):
            await self.beat()
        log.info("node draining", extra={"nodeId": self.node_id})

    async def close(self) -> None:
        """Stop the heartbeat and leave the registry now (a clean exit is gone at once, not in five seconds)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        pipe = self.link.redis.pipeline(transaction=True)
        pipe.delete(self._node(self.node_id))
        pipe.srem(self._nodes, self.node_id)
        with contextlib.suppress(*REDIS_ERRORS):
            await pipe.execute()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.beat()
            except ClusterUnavailable:
                pass  # logged by the link once; the entry expires if this lasts, and comes back with Redis
            except Exception:
                log.exception("cluster heartbeat failed")
            await asyncio.sleep(max(0.1, self._heartbeat - (time.monotonic() - started)))
