"""Pushes to a user's tabs wherever they are connected: this node's tabs at once, and in a cluster every other
node's too, over the bus's all-nodes channel (``user-push``). A user's tabs can be on any node (each tab's socket
lands where the kernel or the load balancer puts it), so a notification stored here reaches all of them.

Pushes are a best-effort shortcut, as on one node: what must not be lost is stored (notifications), and a tab
that was on no node when it was pushed reads it later. While Redis does not answer, only this node's tabs get it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from api.cluster.link import ClusterUnavailable
from api.cluster.node import ClusterNode
from api.realtime.presence import PRESENCE

log = logging.getLogger(__name__)

USER_PUSH = "user-push"


class Fanout:
    """Pushes one message to every tab of a user on every node."""

    def __init__(self, app: web.Application, node: ClusterNode | None) -> None:
        self._app = app
        self._node = node
        self._sending: set[asyncio.Task[None]] = set()
        if node is not None:
            node.bus.on(USER_PUSH, self._arrived)

    def push(self, user_id: str, message: dict[str, Any]) -> int:
        """Send to the user's tabs here now, and to the other nodes' (in the background); returns how many tabs
        here took it."""
        delivered = self._app[PRESENCE].push(user_id, message)
        if self._node is not None:
            task = asyncio.create_task(self._broadcast(user_id, message), name="user push")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return delivered

    async def _broadcast(self, user_id: str, message: dict[str, Any]) -> None:
        assert self._node is not None
        with contextlib.suppress(ClusterUnavailable):
            await self._node.bus.broadcast(USER_PUSH, {"user": user_id, "message": message})

    def _arrived(self, sender: str, body: dict[str, Any]) -> None:
        assert self._node is not None
        if sender == self._node.node_id:
            return  # pushed here already
        message = body.get("message")
        if isinstance(message, dict):
            self._app[PRESENCE].push(str(body.get("user")), message)

    async def close(self) -> None:
        tasks = list(self._sending)
        if tasks:
            await asyncio.wait(tasks, timeout=2)


FANOUT = web.AppKey("fanout", Fanout)
