"""The cluster's message bus: one Redis pub/sub channel per node, and one every node listens to.

A message is a JSON object ``{"k": kind, "from": sender node, "b": body}`` published on
``<prefix>bus:<node id>`` (to one node) or ``<prefix>bus:all`` (to every node). Redis delivers the messages
of one publishing connection in order, and a node publishes each conversation's messages one after another
from one task, so a socket's ``offer`` always reaches the room's node before its ICE candidates. Pub/sub
keeps nothing: a message published while nobody listens is gone, which is what the bridge wants (``PUBLISH``
answers how many nodes received it, so a sender learns at once that a node is gone). LiveKit's routing uses
the same primitive (psrpc over Redis pub/sub); this is its smallest form, with no broker of our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from api.cluster.link import REDIS_ERRORS, ClusterUnavailable, RedisLink, cancelling
from api.cluster.metrics import ClusterMetrics

log = logging.getLogger(__name__)

# (sender node id, body): called on the bus's one listening task, in arrival order; it must not block.
Handler = Callable[[str, dict[str, Any]], None]
RESUBSCRIBE_SECONDS = 0.5


class MessageBus:
    """This node's end of the bus: handlers by kind for what arrives, ``send``/``broadcast`` for what leaves."""

    def __init__(self, link: RedisLink, node_id: str, metrics: ClusterMetrics) -> None:
        self.link = link
        self.node_id = node_id
        self._metrics = metrics
        self._handlers: dict[str, Handler] = {}
        self._reconnected: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def channel(self, node_id: str) -> str:
        return self.link.key("bus", node_id)

    @property
    def everyone(self) -> str:
        return self.link.key("bus", "all")

    def on(self, kind: str, handler: Handler) -> None:
        """Route messages of ``kind`` (one handler per kind) to ``handler``."""
        self._handlers[kind] = handler

    def on_reconnect(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` when the bus is subscribed again after losing Redis (messages may have been lost)."""
        self._reconnected.append(listener)

    async def start(self, *, wait: float = 2.0) -> None:
        """Start listening; wait up to ``wait`` seconds for the subscription (Redis down: it comes later)."""
        self._task = asyncio.create_task(self._listen(), name="cluster bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), wait)

    async def send(self, node_id: str, kind: str, body: dict[str, Any]) -> bool:
        """Publish to one node; False when that node is not listening (gone). Raises ClusterUnavailable."""
        return await self._publish(self.channel(node_id), kind, body) > 0

    async def broadcast(self, kind: str, body: dict[str, Any]) -> int:
        """Publish to every node (this one included); how many received it. Raises ClusterUnavailable."""
        return await self._publish(self.everyone, kind, body)

    async def listening(self, node_ids: list[str]) -> dict[str, bool]:
        """Which of these nodes hold their bus subscription right now (a node killed drops it at once)."""
        if not node_ids:
            return {}
        counts = await self.link.call(self.link.redis.pubsub_numsub(*[self.channel(n) for n in node_ids]))
        by_channel = {str(channel): int(count) for channel, count in counts}
        return {n: by_channel.get(self.channel(n), 0) > 0 for n in node_ids}

    async def _publish(self, channel: str, kind: str, body: dict[str, Any]) -> int:
        data = json.dumps({"k": kind, "from": self.node_id, "b": body}, separators=(",", ":"))
        received = int(await self.link.call(self.link.redis.publish(channel, data)))
        self._metrics.bridge_messages.labels("out").inc()
        if not received:
            self._metrics.bridge_undelivered.inc()
        return received

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        lost = False
        while True:
            pubsub = self.link.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel(self.node_id), self.everyone)
                self.subscribed.set()
                self.link.answered()
                if lost:
                    lost = False
                    log.info("cluster bus subscribed again", extra={"nodeId": self.node_id})
                    for listener in self._reconnected:
                        listener()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if cancelling():  # redis-py can absorb a cancellation in a read that then succeeds
                        raise asyncio.CancelledError
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                if cancelling():
                    raise asyncio.CancelledError from exc
                self.subscribed.clear()
                lost = True
                self.link.failed(exc)
            except ClusterUnavailable:
                self.subscribed.clear()
                lost = True
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

    def _dispatch(self, data: str) -> None:
        try:
            message = json.loads(data)
            kind, sender, body = message["k"], message["from"], message["b"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable bus message", extra={"data": str(data)[:200]})
            return
        self._metrics.bridge_messages.labels("in").inc()
        handler = self._handlers.get(kind)
        if handler is None:
            log.debug("bus message of no known kind", extra={"kind": kind})
            return
        try:
            handler(str(sender), body)
        except Exception:
            log.exception("bus handler failed", extra={"kind": kind, "from": sender})
