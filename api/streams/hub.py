"""The live side of streams on this node: who is connected to which stream, and fan-out of stream messages.

REST handlers tell the hub what happened (a gift was paid for, a stream ended); the signaling side registers each
socket that joins a stream with a ``send`` callable. The hub pushes ``gift`` to everyone on the stream (the reader
included) and ``stream-state {viewerCount, leaderboard, status}`` whenever one of those changes, coalescing bursts
(fifty viewers joining at once cause a handful of pushes, not fifty times fifty).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from api.streams.audience import Audience

log = logging.getLogger(__name__)

# Queues one message for a socket without waiting (False: the socket is closed or too far behind and is being
# dropped); the signaling socket's own writer task does the network I/O.
Send = Callable[[dict[str, Any]], bool]
LeaderboardSource = Callable[[str], Awaitable[list[dict[str, Any]]]]
EndListener = Callable[[str], Awaitable[None]]
StartListener = Callable[[str], Awaitable[None]]


class HubPeers(Protocol):
    """The other nodes of a cluster, as far as the hub goes (:class:`api.streams.homes.StreamHomes`): a stream's
    sockets are all on its home node, and what happens to it elsewhere (a gift paid, the end) reaches them there."""

    async def started(self, stream_id: str) -> bool:
        """A stream went live: True if its home is this node (else its home was told)."""
        ...

    async def ended(self, stream_id: str) -> None:
        """The stream ended (told here already): tell the other nodes."""
        ...

    async def gift_sent(self, stream_id: str, gift: dict[str, Any]) -> None:
        """A gift was paid for here: tell the other nodes (the stream's home has its sockets)."""
        ...

    def viewers(self, stream_id: str, count: int) -> None:
        """The stream's viewer count changed here, on its home: tell the other nodes (for their REST answers)."""
        ...


class StreamHub:
    """Per-node registry of stream audiences and their sockets; ``leaderboard`` reads a stream's ranked top.

    ``peers``: in a cluster, the other nodes (set by :mod:`api.streams.homes`); None on one node.
    """

    def __init__(self, *, max_viewers: int, leaderboard: LeaderboardSource, state_delay: float = 0.2) -> None:
        self._max_viewers = max_viewers
        self._leaderboard = leaderboard
        self._state_delay = state_delay
        self._audiences: dict[str, Audience] = {}
        self._senders: dict[str, dict[str, Send]] = {}  # stream id -> connection id -> send
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._end_listeners: list[EndListener] = []
        self._start_listeners: list[StartListener] = []
        self.peers: HubPeers | None = None
        self._counted_elsewhere: dict[str, int] = {}  # stream id -> viewers on its home, another node

    # Membership (called by signaling) ------------------------------------------------------------------------
    def join(self, stream_id: str, reader_id: str, connection_id: str, user_id: str, send: Send) -> str:
        """Register a socket on a stream; returns its role (``publisher`` or ``viewer``). Raises AudienceFull."""
        audience = self._audiences.get(stream_id)
        if audience is None:
            audience = self._audiences[stream_id] = Audience(reader_id=reader_id, max_viewers=self._max_viewers)
        publishing = audience.publisher_connected
        changed = audience.join(connection_id, user_id) or publishing != audience.publisher_connected
        self._senders.setdefault(stream_id, {})[connection_id] = send
        log.info("stream joined", extra={"streamId": stream_id, "userId": user_id,
                                         "role": audience.role_of(user_id), "viewerCount": audience.viewer_count})
        if changed:
            self.state_changed(stream_id)
        return audience.role_of(user_id)

    def leave(self, stream_id: str, connection_id: str) -> None:
        audience = self._audiences.get(stream_id)
        if audience is None:
            return
        publishing = audience.publisher_connected
        changed = audience.leave(connection_id) or publishing != audience.publisher_connected
        self._senders.get(stream_id, {}).pop(connection_id, None)
        if not len(audience):
            self._forget(stream_id)
        elif changed:
            self.state_changed(stream_id)

    def viewer_count(self, stream_id: str) -> int:
        audience = self._audiences.get(stream_id)
        return audience.viewer_count if audience is not None else self._counted_elsewhere.get(stream_id, 0)

    def counted_elsewhere(self, stream_id: str, count: int) -> None:
        """The stream's home (another node) says how many watch it."""
        self._counted_elsewhere[stream_id] = count

    def audience(self, stream_id: str) -> Audience | None:
        return self._audiences.get(stream_id)

    def on_start(self, listener: StartListener) -> None:
        """Call ``listener(stream_id)`` when a stream goes live (the signaling side waits for its publisher)."""
        self._start_listeners.append(listener)

    def on_end(self, listener: EndListener) -> None:
        """Call ``listener(stream_id)`` when a stream ends (the signaling side closes its media there)."""
        self._end_listeners.append(listener)

    # Events (called by REST handlers and signaling) ------------------------------------------------------------
    async def broadcast(self, stream_id: str, message: dict[str, Any], *, exclude: str | None = None) -> None:
        """Send one message to every socket on the stream (on this node)."""
        undelivered = 0
        for cid, send in list(self._senders.get(stream_id, {}).items()):
            if cid == exclude:
                continue
            try:
                undelivered += not send(message)
            except Exception:
                undelivered += 1
                log.exception("stream message send failed", extra={"streamId": stream_id})
        if undelivered:
            log.info("stream message not delivered to every socket", extra={
                "streamId": stream_id, "type": message.get("type"), "undelivered": undelivered})

    async def gift_sent(self, stream_id: str, gift: dict[str, Any], *, here: bool = False) -> None:
        """A gift was paid for: everyone on the stream sees it, then the new leaderboard (``here``: only the
        sockets on this node; another node told us)."""
        await self.broadcast(stream_id, {"type": "gift", **gift})
        self.state_changed(stream_id)
        if self.peers is not None and not here:
            await self.peers.gift_sent(stream_id, gift)

    async def started(self, stream_id: str) -> None:
        """A stream went live (REST): tell the listeners (on its home node)."""
        if self.peers is not None and not await self.peers.started(stream_id):
            return
        for listener in self._start_listeners:
            try:
                await listener(stream_id)
            except Exception:
                log.exception("stream start listener failed", extra={"streamId": stream_id})

    async def ended(self, stream_id: str, *, here: bool = False) -> None:
        """The stream ended: tell everyone at once, let the media go, forget the audience (on every node, unless
        ``here``: another node told us)."""
        self._counted_elsewhere.pop(stream_id, None)
        pending = self._pending.pop(stream_id, None)
        if pending is not None:
            pending.cancel()
        await self.broadcast(stream_id, await self.state(stream_id, status="ended"))
        for listener in self._end_listeners:
            try:
                await listener(stream_id)
            except Exception:
                log.exception("stream end listener failed", extra={"streamId": stream_id})
        self._forget(stream_id)
        if self.peers is not None and not here:
            await self.peers.ended(stream_id)

    def state_changed(self, stream_id: str) -> None:
        """Schedule one ``stream-state`` push for this stream soon; further changes until then join it."""
        if stream_id in self._pending or stream_id not in self._audiences:
            return
        self._pending[stream_id] = asyncio.get_running_loop().create_task(self._push_state(stream_id))

    async def state(self, stream_id: str, *, status: str = "live") -> dict[str, Any]:
        """``stream-state``; a live stream whose reader is not publishing (gone to a private reading, a dropped
        connection) is ``paused``, so viewers are not shown a frozen picture as if it were live."""
        audience = self._audiences.get(stream_id)
        if status == "live" and audience is not None and not audience.publisher_connected:
            status = "paused"
        return {"type": "stream-state", "streamId": stream_id, "viewerCount": self.viewer_count(stream_id),
                "leaderboard": await self._leaderboard(stream_id), "status": status}

    def live_here(self) -> list[str]:
        """The streams with anyone on them on this node."""
        return list(self._audiences)

    async def close(self) -> None:
        """Stop pending pushes (application shutdown)."""
        pending, self._pending = list(self._pending.values()), {}
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Internals -----------------------------------------------------------------------------------------------
    async def _push_state(self, stream_id: str) -> None:
        try:
            await asyncio.sleep(self._state_delay)
            # Cleared before reading the state, so a change that lands while we read schedules another push.
            self._pending.pop(stream_id, None)
            await self.broadcast(stream_id, await self.state(stream_id))
            if self.peers is not None:
                self.peers.viewers(stream_id, self.viewer_count(stream_id))
        except asyncio.CancelledError:
            raise
        except Exception:
            self._pending.pop(stream_id, None)
            log.exception("stream-state push failed", extra={"streamId": stream_id})

    def _forget(self, stream_id: str) -> None:
        self._audiences.pop(stream_id, None)
        self._senders.pop(stream_id, None)
        pending = self._pending.pop(stream_id, None)
        if pending is not None:
            pending.cancel()


# Set up by :func:`api.streams.routes.setup`.
STREAM_HUB = web.AppKey("stream_hub", StreamHub)
