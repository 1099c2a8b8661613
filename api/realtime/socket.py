"""One signaling WebSocket, and the contract of the features a socket can join over it.

A :class:`SignalingSocket` is one authenticated browser tab: it queues what the server pushes (a tab that stops
reading is closed rather than buffered forever) and holds at most one *seat*, in the feature it joined. A
feature is a :class:`Channel`: readings are joined by ``join {sessionId}``, live streams by ``join {streamId}``
(api/readings/signaling.py, api/streams/signaling.py); the transport (:mod:`api.realtime.transport`) routes a
joined socket's messages to its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any, Protocol

from aiohttp import web

from api.accounts.auth import AuthContext, User, resolve_login
from api.core.keys import DATABASE

log = logging.getLogger(__name__)

OUTBOX_MESSAGES = 512  # a tab this far behind is too slow to keep
CLOSE_RATE_LIMITED, CLOSE_UNAUTHORIZED, CLOSE_IDLE, CLOSE_SLOW = 4429, 4401, 4408, 4413


class SignalingError(Exception):
    """A message that cannot be carried out; becomes an ``error`` reply, nothing else changes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Channel(Protocol):
    """A feature a signaling socket joins (a reading, a live stream).

    ``field`` is the id its ``join`` message carries, ``noun`` what it is called in the ``not_joined``
    reply, and ``types`` the message types it carries once joined.
    """

    field: str
    noun: str
    types: frozenset[str]

    async def join(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        """``join {<field>}``: take a seat (leaving the socket's seat in another channel first)."""
        ...

    async def handle(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        """A message (not ``join`` or ``ping``) from a socket seated in this channel."""
        ...

    async def leave(self, socket: SignalingSocket) -> None:
        """Give up the socket's seat (also when the socket closes); nothing when it has none here."""
        ...


class Wire(Protocol):
    """Where a socket's messages go: the browser's WebSocket, or the signal bridge to the node that holds it
    (:class:`api.realtime.bridge.BridgeWire`)."""

    @property
    def closed(self) -> bool: ...

    @property
    def close_code(self) -> int | None: ...

    async def send_str(self, data: str, compress: int | None = None) -> None: ...

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool: ...


class SignalingSocket:
    """One authenticated signaling WebSocket: a tab for pushes, and the seat it holds in one channel.

    ``bridged_from`` is None for a browser's socket on this node; for a socket held by another node and bridged
    here (the room it joined lives here), that node's id.
    """

    def __init__(self, ws: Wire, context: AuthContext, app: web.Application, address: str, *,
                 bridged_from: str | None = None) -> None:
        self.ws = ws
        self.bridged_from = bridged_from
        self.id = uuid.uuid4().hex
        self.address = address
        self.context = context
        self.user: User = context.user
        self.user_id = context.user.id
        self.app = app
        self.channel: Channel | None = None  # the channel the socket is seated in
        self.seat: Any = None  # what that channel holds for the socket
        # Set by the signal bridge only while a ``join`` carries the socket's seat over from a room's node that died
        # to the room's new one (api.realtime.bridge, "resume"): what the old node left for that. Never from a browser.
        self.resume: dict[str, Any] | None = None
        self.opened = time.monotonic()
        self.last_message = self.opened
        self.refused = 0
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_MESSAGES)
        self._writer = asyncio.create_task(self._write(), name=f"ws writer {self.user_id}")
        self.closed = False
        self._closing: asyncio.Task[bool] | None = None

    def seat_in(self, channel: Channel, seat: Any) -> None:
        self.channel, self.seat = channel, seat

    def unseat(self) -> Any:
        """Forget the seat; returns what it was."""
        seat, self.channel, self.seat = self.seat, None, None
        return seat

    async def leave_other(self, channel: Channel) -> None:
        """Leave the seat held in another channel than ``channel`` (a socket is in one at a time)."""
        if self.channel is not None and self.channel is not channel:
            await self.channel.leave(self)

    def send(self, message: dict[str, Any]) -> bool:
        """Queue a message for the tab; a tab that stops reading is closed rather than buffered forever."""
        return self.send_raw(json.dumps(message, separators=(",", ":")))

    def send_raw(self, text: str) -> bool:
        """Queue a message already encoded (what the signal bridge brings from the room's node)."""
        if self.closed:
            return False
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("signaling socket too slow, closing", extra={"userId": self.user_id})
            self.close_soon(CLOSE_SLOW, "too slow")
            return False
        return True

    async def logged_in(self) -> bool:
        """The login this socket was opened with still holds (not logged out, expired, or its user suspended)."""
        return await resolve_login(self.app[DATABASE].pool, self.context.login_id) is not None

    def error(self, code: str, message: str) -> None:
        self.send({"type": "error", "code": code, "message": message})

    async def _write(self) -> None:
        while True:
            text = await self._outbox.get()
            try:
                if text is None:
                    return
                try:
                    await self.ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    return
            finally:
                self._outbox.task_done()

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far has gone out (or the writer stopped), up to ``timeout``."""
        if self._writer.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout)

    def close_soon(self, code: int, message: str) -> None:
        """Close with ``code`` from any task; the socket's own handler waits for it before it returns."""
        if self._closing is None:
            self.closed = True
            self._closing = asyncio.create_task(self.ws.close(code=code, message=message.encode()))
            self._closing.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def finish(self) -> None:
        """Stop the writer after flushing what is queued (the socket is closing)."""
        if self._closing is not None:
            # Returning from the handler before the close frame is out would drop the close code (1006).
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, ConnectionError):
                await asyncio.wait_for(asyncio.shield(self._closing), 2.0)
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
        self._writer.cancel()


def string_field(message: dict[str, Any], name: str, *, max_len: int) -> str:
    """A required string field of a message, bounded; a ``missing_field``/``bad_field``/``too_large`` error."""
    value = message.get(name)
    if value is None:
        raise SignalingError("missing_field", f"{message['type']} needs {name}")
    if not isinstance(value, str):
        raise SignalingError("bad_field", f"{name} must be a string")
    if len(value) > max_len:
        raise SignalingError("too_large", f"{name} is too long")
    return value
