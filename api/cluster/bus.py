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
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from api.cluster.link import REDIS_ERRORS, ClusterUnavailable, RedisLink, cancel_requests
from api.cluster.metrics import ClusterMetrics
from api.core.errors import ApiError

log = logging.getLogger(__name__)

# (sender node id, body): called on the bus's one listening task, in arrival order; it must not block.
Handler = Callable[[str, dict[str, Any]], None]
# (sender node id, body) -> the reply's body: a request served on a task of its own.
Responder = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
RESUBSCRIBE_SECONDS = 0.5
REQUEST_SECONDS = 10.0


class NodeGone(Exception):
    """The node a request was for is not listening (it stopped); nothing was done there."""


class RemoteError(Exception):
    """The node a request went to refused it: its API error (status, code, message) as it said it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class MessageBus:
    """This node's end of the bus: handlers by kind for what arrives, ``send``/``broadcast`` for what leaves."""

    def __init__(self, link: RedisLink, node_id: str, metrics: ClusterMetrics) -> None:
        self.link = link
        self.node_id = node_id
        self._metrics = metrics
        self._handlers: dict[str, Handler] = {}
        self._responders: dict[str, Responder] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._handlers["rpc"] = self._on_request
        self._handlers["rpc-reply"] = self._on_reply
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

    def serve(self, kind: str, responder: Responder) -> None:
        """Answer requests of ``kind`` (:meth:`request`) with ``responder``; an ApiError it raises is sent back."""
        self._responders[kind] = responder

    async def request(self, node_id: str, kind: str, body: dict[str, Any], *,
                      timeout: float = REQUEST_SECONDS) -> dict[str, Any]:
        """Ask one node and wait for its answer. Raises NodeGone (not listening), RemoteError (it refused),
        TimeoutError (no answer in time: it may or may not have acted) or ClusterUnavailable."""
        request_id = uuid.uuid4().hex
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiting
        try:
            if not await self.send(node_id, "rpc", {"id": request_id, "kind": kind, "body": body}):
                raise NodeGone(f"node {node_id} is not listening")
            return await asyncio.wait_for(waiting, timeout)
        finally:
            self._waiting.pop(request_id, None)

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

    def _on_request(self, sender: str, message: dict[str, Any]) -> None:
        task = asyncio.create_task(self._answer(sender, message), name=f"bus request {message.get('kind')}")
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _answer(self, sender: str, message: dict[str, Any]) -> None:
        request_id, kind = str(message.get("id")), str(message.get("kind"))
        responder = self._responders.get(kind)
        reply: dict[str, Any]
        try:
            if responder is None:
                raise RemoteError(501, "unsupported", f"this node does not answer {kind[:40]!r}")
            reply = {"id": request_id, "ok": await responder(sender, dict(message.get("body") or {}))}
        except RemoteError as exc:
            reply = {"id": request_id, "err": {"status": exc.status, "code": exc.code, "message": exc.message}}
        except ApiError as exc:
            reply = {"id": request_id, "err": {"status": exc.status, "code": exc.code, "message": exc.message}}
        except Exception:
            log.exception("bus request failed", extra={"kind": kind, "from": sender})
            reply = {"id": request_id, "err": {"status": 500, "code": "internal",
                                               "message": "something went wrong on our side"}}
        with contextlib.suppress(ClusterUnavailable):
            await self.send(sender, "rpc-reply", reply)

    def _on_reply(self, sender: str, message: dict[str, Any]) -> None:
        waiting = self._waiting.get(str(message.get("id")))
        if waiting is None or waiting.done():
            return
        if "err" in message:
            err = message["err"]
            waiting.set_exception(RemoteError(int(err["status"]), str(err["code"]), str(err["message"])))
        else:
            waiting.set_result(dict(message.get("ok") or {}))

    async def close(self) -> None:
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
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
                    if cancel_requests():  # this task only stops by being cancelled; redis-py may absorb it
                        raise asyncio.CancelledError
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                if cancel_requests():
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
