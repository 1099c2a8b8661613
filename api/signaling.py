"""The signaling WebSocket at ``/ws``: joins, offers and answers, ICE, chat, and the live session state.

One socket per browser tab, authenticated like REST (the session cookie, with the ``Origin`` checked
against the public URL to stop cross-site WebSocket hijacking, or ``Authorization: Bearer``). A socket
joins at most one reading at a time; the relay answers the browser's offer. Every client message gets
either its answer or an ``error`` {code, message}, and a bad message never changes anything nor closes
the socket, except abuse: floods (close 4429), a revoked login (4401), frames above the hard cap (1009).

Liveness: aiohttp pings every ``HEARTBEAT`` seconds and closes a socket whose pong does not come back
within half of that, so a silent (dead) socket is closed within ~22 s; a socket that has joined nothing
and said nothing for ``IDLE_SECONDS`` is closed too (4408). A closed socket is a disconnect for the meter.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from api.appkeys import DATABASE, SETTINGS
from api.auth import LOGOUT_LISTENERS, AuthContext, User, authenticate, credentials, resolve
from api.caps import Holdings
from api.client_address import client_address
from api.errors import ApiError, Forbidden, Unauthorized
from api.live_readings import LIVE_READINGS
from api.notifications import PRESENCE
from api.presence import Presence
from api.ratelimit import RateLimiter
from api.reading_runtime import ReadingRuntime, participant_id
from api.reading_states import Actor, State
from api.reading_store import fetch_for, session_json
from api.turn import ice_servers_for
from api.validation import parse_json
from billing.errors import BillingError
from relay import RelayError
from relay.sdp import MAX_SDP_CHARS

log = logging.getLogger(__name__)

HEARTBEAT = 15.0
MAX_FRAME_BYTES = 256 * 1024  # aiohttp closes the socket (1009) above this
MAX_MESSAGE_BYTES = 64 * 1024  # above this (and below the frame cap) a message gets an error reply
MAX_SDP_BYTES = MAX_SDP_CHARS  # the relay's bound (relay.sdp), said here too so a long one is too_large
IDLE_SECONDS = 15 * 60
MESSAGES_PER_WINDOW, WINDOW_SECONDS = 60, 2.0
ABUSE_REFUSALS = 60  # refused messages in one window before the socket is closed
OUTBOX_MESSAGES = 512  # a tab this far behind is too slow to keep
MAX_SOCKETS_PER_USER = 8
CLOSE_RATE_LIMITED, CLOSE_UNAUTHORIZED, CLOSE_IDLE, CLOSE_SLOW = 4429, 4401, 4408, 4413

# Other features (live streams) handle ``join`` {streamId} and their own message types through this hook.
StreamHandler = Callable[["SignalingSocket", dict[str, Any]], Awaitable[None]]
STREAM_HANDLER = web.AppKey("signaling_stream_handler", object)
# Socket clean-ups still running (kept referenced until done).
CLEANUPS = web.AppKey("signaling_cleanups", set)
# Open sockets per client address (SOULSEER_SOCKETS_PER_ADDRESS); per user, the oldest beyond
# MAX_SOCKETS_PER_USER is closed instead, so a user's newest tab always works.
SOCKETS = web.AppKey("signaling_sockets", Holdings)


class SignalingError(Exception):
    """A message that cannot be carried out; becomes an ``error`` reply, nothing else changes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SignalingSocket:
    """One authenticated signaling WebSocket: an outlet for pushes, and the reading it has joined."""

    def __init__(self, ws: web.WebSocketResponse, context: AuthContext, app: web.Application,
                 credentials: tuple[str, str] | None, address: str) -> None:
        self.ws = ws
        self.id = uuid.uuid4().hex
        self.address = address
        self.context = context
        self.credentials = credentials
        self.user: User = context.user
        self.user_id = context.user.id
        self.app = app
        self.session_id: str | None = None
        self.role: Actor | None = None
        self.runtime: ReadingRuntime | None = None
        self.stream: Any = None  # owned by the streams feature's handler
        self.opened = time.monotonic()
        self.last_message = self.opened
        self.refused = 0
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_MESSAGES)
        self._writer = asyncio.create_task(self._write(), name=f"ws writer {self.user_id}")
        self.closed = False
        self._closing: asyncio.Task[bool] | None = None

    def send(self, message: dict[str, Any]) -> bool:
        """Queue a message for the tab; a tab that stops reading is closed rather than buffered forever."""
        if self.closed:
            return False
        try:
            self._outbox.put_nowait(json.dumps(message, separators=(",", ":")))
        except asyncio.QueueFull:
            log.warning("signaling socket too slow, closing", extra={"userId": self.user_id})
            self.close_soon(CLOSE_SLOW, "too slow")
            return False
        return True

    def error(self, code: str, message: str) -> None:
        self.send({"type": "error", "code": code, "message": message})

    async def _write(self) -> None:
        while True:
            text = await self._outbox.get()
            if text is None:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

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


def origin_allowed(request: web.Request, public_url: str) -> bool:
    """A browser's WebSocket ``Origin`` must be our public URL or the host it connected to."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: the same-origin attack needs one
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False
    public = urlsplit(public_url)
    if (parts.scheme, parts.netloc) == (public.scheme, public.netloc):
        return True
    return parts.netloc == request.host and parts.scheme in {"http", "https"}


async def websocket(request: web.Request) -> web.StreamResponse:
    """Upgrade to the signaling WebSocket (authenticated; see the module docstring)."""
    context = await authenticate(request)
    if context is None:
        raise Unauthorized("authentication required")
    if context.via == "cookie" and not origin_allowed(request, request.app[SETTINGS].public_url):
        log.warning("signaling refused: foreign origin", extra={"userId": context.user.id,
                                                                "origin": request.headers.get("Origin"),
                                                                "address": client_address(request)})
        raise Forbidden("this origin may not open the signaling socket", code="bad_origin")
    address = client_address(request)
    sockets = request.app[SOCKETS]
    socket_id = uuid.uuid4().hex
    sockets.claim(socket_id, context.user.id, address)  # a 429 before the upgrade
    try:
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
    except BaseException:
        sockets.release(socket_id)
        raise
    socket = SignalingSocket(ws, context, request.app, credentials(request), address)
    socket.id = socket_id
    presence = request.app[PRESENCE]
    for old in sorted(presence.outlets(socket.user_id), key=lambda o: getattr(o, "opened", 0))[
            : max(0, len(presence.outlets(socket.user_id)) - MAX_SOCKETS_PER_USER + 1)]:
        if isinstance(old, SignalingSocket):
            old.close_soon(WSCloseCode.POLICY_VIOLATION, "too many connections")
    presence.add(socket)
    limiter = RateLimiter(MESSAGES_PER_WINDOW, WINDOW_SECONDS)
    log.info("signaling connected", extra={"userId": socket.user_id, "address": address})
    try:
        while not ws.closed:
            try:
                message = await ws.receive(timeout=_idle_timeout(socket))
            except TimeoutError:
                if socket.session_id is None and time.monotonic() - socket.last_message >= IDLE_SECONDS:
                    await ws.close(code=CLOSE_IDLE, message=b"idle")
                    break
                continue
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
            socket.last_message = time.monotonic()
            if limiter.hit("socket") > 0:
                socket.refused += 1
                if socket.refused >= ABUSE_REFUSALS:
                    log.warning("signaling flood, closing", extra={"userId": socket.user_id})
                    socket.error("rate_limited", "too many messages; closing")
                    await socket.finish()
                    await ws.close(code=CLOSE_RATE_LIMITED, message=b"rate limited")
                    break
                socket.error("rate_limited", "too many messages; slow down")
                continue
            socket.refused = 0
            if message.type is not WSMsgType.TEXT:
                socket.error("bad_message", "messages must be JSON text frames")
                continue
            await handle_text(socket, message.data)
    finally:
        # aiohttp cancels this handler when the peer's connection drops; the clean-up (relay peer, meter)
        # must still run to the end, so it runs as its own task that the cancellation cannot interrupt.
        cleanup = asyncio.create_task(_cleanup(socket, presence, request.app), context=contextvars.copy_context())
        tasks = request.app[CLEANUPS]
        tasks.add(cleanup)
        cleanup.add_done_callback(tasks.discard)
        await asyncio.shield(cleanup)
    return ws


async def _cleanup(socket: SignalingSocket, presence: Presence, app: web.Application) -> None:
    app[SOCKETS].release(socket.id)
    presence.remove(socket)
    await leave_reading(socket)
    await socket.finish()
    stream_handler = app.get(STREAM_HANDLER)
    if socket.stream is not None and callable(stream_handler):
        with contextlib.suppress(Exception):
            await stream_handler(socket, {"type": "leave"})
    log.info("signaling closed", extra={"userId": socket.user_id, "code": socket.ws.close_code})


def _idle_timeout(socket: SignalingSocket) -> float:
    return max(1.0, IDLE_SECONDS - (time.monotonic() - socket.last_message))


async def handle_text(socket: SignalingSocket, data: str) -> None:
    """Parse, check and carry out one client message; every failure becomes an ``error`` reply."""
    try:
        if len(data) > MAX_MESSAGE_BYTES:
            raise SignalingError("too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
        message = parse_json(data, what="message")  # malformed, too deep, lone surrogates: an error reply
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise SignalingError("bad_message", "a message is a JSON object with a string type")
        handler = HANDLERS.get(message["type"])
        stream_handler = socket.app.get(STREAM_HANDLER)
        if socket.stream is not None and callable(stream_handler) and message["type"] not in ("join", "ping"):
            # A socket on a live stream: its offers, candidates, chat and leave are the stream's.
            await stream_handler(socket, message)
            return
        if handler is None:
            raise SignalingError("unknown_type", f"unknown message type {message['type'][:40]!r}")
        await handler(socket, message)
    except SignalingError as exc:
        socket.error(exc.code, exc.message)
    except ApiError as exc:
        socket.error(exc.code, exc.message)
    except (RelayError, BillingError) as exc:
        socket.error(exc.code, exc.message)
    except Exception:
        log.exception("signaling message failed", extra={"userId": socket.user_id, "sessionId": socket.session_id})
        socket.error("internal", "something went wrong on our side")


def _string(message: dict[str, Any], name: str, *, max_len: int) -> str:
    value = message.get(name)
    if value is None:
        raise SignalingError("missing_field", f"{message['type']} needs {name}")
    if not isinstance(value, str):
        raise SignalingError("bad_field", f"{name} must be a string")
    if len(value) > max_len:
        raise SignalingError("too_large", f"{name} is too long")
    return value


def _joined(socket: SignalingSocket) -> tuple[ReadingRuntime, Actor, str]:
    runtime, role, session_id = socket.runtime, socket.role, socket.session_id
    if runtime is None or role is None or session_id is None:
        raise SignalingError("not_joined", "join a session first")
    if runtime.lost:
        raise SignalingError("reading_moved", "this reading is now run by another server; join it again")
    if runtime.finished.is_set() or runtime.status is State.ENDED:
        raise SignalingError("reading_closed", "the reading has ended")
    return runtime, role, session_id


async def on_join(socket: SignalingSocket, message: dict[str, Any]) -> None:
    if "streamId" in message and "sessionId" not in message:
        stream_handler = socket.app.get(STREAM_HANDLER)
        if not callable(stream_handler):
            raise SignalingError("unsupported", "live streams are not available on this server")
        await leave_reading(socket)
        await stream_handler(socket, message)
        return
    raw = _string(message, "sessionId", max_len=64)
    stream_handler = socket.app.get(STREAM_HANDLER)
    if socket.stream is not None and callable(stream_handler):
        await stream_handler(socket, {"type": "leave"})  # a socket is on one stream or one reading at a time
    try:
        session_id = str(uuid.UUID(raw))
    except ValueError:
        raise SignalingError("unknown_session", "no such session") from None
    app = socket.app
    # A login revoked (logout) since the socket opened must not join anything.
    token_context = await _still_logged_in(socket)
    if token_context is None:
        socket.error("unauthorized", "your login has ended; sign in again")
        socket.close_soon(CLOSE_UNAUTHORIZED, "login ended")
        return
    row, role = await fetch_for(app[DATABASE].pool, session_id, socket.user_id)
    status = State(row["status"])
    if status is State.REQUESTED:
        raise SignalingError("not_accepted", "the reader has not accepted this session yet")
    if status not in (State.ACCEPTED, State.ACTIVE):
        raise SignalingError("reading_closed", f"the session is {status.value}")
    if row["mode"] == "scheduled":
        from api import scheduling

        scheduling.check_join_window(app[SETTINGS], row)
    live = app[LIVE_READINGS]
    # A reading whose owner stopped (a restart, a failed node) is adopted here once its lease lapses.
    runtime = await live.run(session_id, wait=live.lease_seconds + 1)
    if runtime is None:
        raise SignalingError("unavailable", "this session is not running on this server")
    if socket.session_id is not None and socket.session_id != session_id:
        await leave_reading(socket)
    socket.session_id, socket.role, socket.runtime = session_id, role, runtime
    socket.send({
        "type": "joined", "sessionId": session_id, "role": role.value,
        "participantId": participant_id(session_id, role),
        "iceServers": ice_servers_for(app[SETTINGS], socket.user_id, time.time()),
        "session": session_json(row),
    })
    runtime.attach(role, socket)
    log.info("joined reading", extra={"userId": socket.user_id, "sessionId": session_id, "role": role.value})


async def _still_logged_in(socket: SignalingSocket) -> AuthContext | None:
    if socket.credentials is None:
        return None
    return await resolve(socket.app[DATABASE].pool, *socket.credentials)


async def on_offer(socket: SignalingSocket, message: dict[str, Any]) -> None:
    runtime, role, session_id = _joined(socket)
    sdp = _string(message, "sdp", max_len=MAX_SDP_BYTES)
    if runtime.session_type == "chat":
        raise SignalingError("no_media", "a chat reading carries no audio or video")
    relay = socket.app[LIVE_READINGS].relay
    answer = await relay.join_room(session_id, participant_id(session_id, role), sdp)
    if socket.runtime is not runtime or runtime.finished.is_set():
        # The reading ended (or the socket left) while the relay was answering: take the peer back.
        if not _other_socket_joined(runtime, role, socket):
            await relay.leave(participant_id(session_id, role))
        raise SignalingError("reading_closed", "the reading has ended")
    socket.send({"type": "answer", "sdp": answer})


async def on_ice_candidate(socket: SignalingSocket, message: dict[str, Any]) -> None:
    _, role, session_id = _joined(socket)
    # The relay checks the candidate (relay.ice: the one check for readings and streams): bad_candidate.
    relay = socket.app[LIVE_READINGS].relay
    await relay.add_ice_candidate(participant_id(session_id, role), message.get("candidate"))


async def on_chat(socket: SignalingSocket, message: dict[str, Any]) -> None:
    runtime, role, _ = _joined(socket)
    if "text" not in message:
        raise SignalingError("missing_field", "chat-message needs text")
    await socket.app[LIVE_READINGS].chat.post(runtime, role, message["text"])


async def on_end(socket: SignalingSocket, message: dict[str, Any]) -> None:
    runtime, role, _ = _joined(socket)
    await runtime.end(role, f"ended_by_{role.value}")


async def on_ping(socket: SignalingSocket, message: dict[str, Any]) -> None:
    socket.send({"type": "pong"})


async def on_leave(socket: SignalingSocket, message: dict[str, Any]) -> None:
    if socket.session_id is None:
        raise SignalingError("not_joined", "join a session first")
    await leave_reading(socket)
    socket.send({"type": "left"})


async def leave_reading(socket: SignalingSocket) -> None:
    """Detach the socket from its reading, and close its media unless a newer socket of theirs took over."""
    runtime, role, session_id = socket.runtime, socket.role, socket.session_id
    socket.runtime = socket.role = socket.session_id = None
    if runtime is None or role is None or session_id is None:
        return
    runtime.detach(role, socket)
    # A participant who reconnected has a newer socket on the same relay participant (its re-offer
    # replaced the peer connection): the old socket closing must not tear that down.
    if not _other_socket_joined(runtime, role, socket):
        with contextlib.suppress(RelayError):
            await socket.app[LIVE_READINGS].relay.leave(participant_id(session_id, role))


def _other_socket_joined(runtime: ReadingRuntime, role: Actor, socket: SignalingSocket) -> bool:
    return any(isinstance(o, SignalingSocket) and o is not socket and o.runtime is runtime and o.role is role
               for o in socket.app[PRESENCE].outlets(socket.user_id))


HANDLERS: dict[str, Callable[[SignalingSocket, dict[str, Any]], Awaitable[None]]] = {
    "join": on_join,
    "offer": on_offer,
    "ice-candidate": on_ice_candidate,
    "chat-message": on_chat,
    "end-session": on_end,
    "leave": on_leave,
    "ping": on_ping,
}


def _close_sockets_of_login(app: web.Application, user_id: str, login_id: str) -> None:
    """A logout ends the sockets opened with that login now (4401: the browser stops reconnecting)."""
    for outlet in app[PRESENCE].outlets(user_id):
        if isinstance(outlet, SignalingSocket) and outlet.context.login_id == login_id:
            outlet.error("unauthorized", "your login has ended; sign in again")
            outlet.close_soon(CLOSE_UNAUTHORIZED, "login ended")


def setup(app: web.Application) -> None:
    app[CLEANUPS] = set()
    app[SOCKETS] = Holdings(per_user=None, per_address=app[SETTINGS].sockets_per_address,
                            what="signaling connections", code="too_many_connections")
    app.setdefault(LOGOUT_LISTENERS, []).append(functools.partial(_close_sockets_of_login, app))
    app.router.add_get("/ws", websocket)
