"""The signaling WebSocket at ``/ws``: authentication, liveness, flood control, and routing to channels.

One socket per browser tab, authenticated like REST (the session cookie, with the ``Origin`` checked
against the public URL to stop cross-site WebSocket hijacking, or ``Authorization: Bearer``). A socket
holds at most one seat at a time: ``join {sessionId}`` is routed to the readings channel, ``join {streamId}``
to the live streams channel (each registered with :func:`register`), and a seated socket's messages go to
its channel. Every client message gets
either its answer or an ``error`` {code, message}, and a bad message never changes anything nor closes
the socket, except abuse: floods (close 4429), a revoked login (4401), frames above the hard cap (1009).

Liveness: aiohttp pings every ``HEARTBEAT`` seconds and closes a socket whose pong does not come back
within half of that, so a silent (dead) socket is closed within ~22 s; a socket that has joined nothing
and said nothing for ``IDLE_SECONDS`` is closed too (4408). A closed socket leaves its seat: for a reading,
a disconnect for the meter.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from api.accounts.auth import LOGOUT_LISTENERS, authenticate
from api.core.caps import Holdings
from api.core.client_address import client_address
from api.core.errors import ApiError, Forbidden, Unauthorized
from api.core.keys import SETTINGS
from api.core.ratelimit import RateLimiter
from api.core.validation import parse_json
from api.realtime.presence import PRESENCE, Presence
from api.realtime.socket import (
    CLOSE_IDLE,
    CLOSE_RATE_LIMITED,
    CLOSE_UNAUTHORIZED,
    Channel,
    SignalingError,
    SignalingSocket,
)
from billing.errors import BillingError
from relay import RelayError

log = logging.getLogger(__name__)

HEARTBEAT = 15.0
MAX_FRAME_BYTES = 256 * 1024  # aiohttp closes the socket (1009) above this
MAX_MESSAGE_BYTES = 64 * 1024  # above this (and below the frame cap) a message gets an error reply
IDLE_SECONDS = 15 * 60
MESSAGES_PER_WINDOW, WINDOW_SECONDS = 60, 2.0
ABUSE_REFUSALS = 60  # refused messages in one window before the socket is closed
MAX_SOCKETS_PER_USER = 8

# The features sockets join, in the order a ``join`` is matched against their id fields.
CHANNELS = web.AppKey("signaling_channels", list)
# Socket clean-ups still running (kept referenced until done).
CLEANUPS = web.AppKey("signaling_cleanups", set)
# Called with each socket once it has closed (and left its seat): what else held state for it lets it go.
CLOSED_LISTENERS = web.AppKey("signaling_closed_listeners", list)
# Open sockets per client address (SOULSEER_SOCKETS_PER_ADDRESS); per user, the oldest beyond
# MAX_SOCKETS_PER_USER is closed instead, so a user's newest tab always works.
SOCKETS = web.AppKey("signaling_sockets", Holdings)


def register(app: web.Application, channel: Channel) -> None:
    """Let sockets join ``channel`` by its id field (call after :func:`setup`)."""
    app[CHANNELS].append(channel)


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
    socket = SignalingSocket(ws, context, request.app, address)
    socket.id = socket_id
    presence = request.app[PRESENCE]
    for old in sorted(presence.tabs(socket.user_id), key=lambda o: getattr(o, "opened", 0))[
            : max(0, len(presence.tabs(socket.user_id)) - MAX_SOCKETS_PER_USER + 1)]:
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
                if socket.channel is None and time.monotonic() - socket.last_message >= IDLE_SECONDS:
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
    if socket.channel is not None:
        try:
            await socket.channel.leave(socket)
        except Exception:
            log.exception("leaving a seat failed", extra={"userId": socket.user_id})
    for listener in app[CLOSED_LISTENERS]:
        try:
            await listener(socket)
        except Exception:
            log.exception("a closed socket's listener failed", extra={"userId": socket.user_id})
    await socket.finish()
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
        if handler is not None:
            await handler(socket, message)
        elif socket.channel is not None:
            await socket.channel.handle(socket, message)
        else:
            _not_joined(socket.app[CHANNELS], message["type"])
    except SignalingError as exc:
        socket.error(exc.code, exc.message)
    except ApiError as exc:
        socket.error(exc.code, exc.message)
    except (RelayError, BillingError) as exc:
        socket.error(exc.code, exc.message)
    except Exception:
        log.exception("signaling message failed", extra={"userId": socket.user_id,
                                                         "channel": getattr(socket.channel, "noun", None)})
        socket.error("internal", "something went wrong on our side")


def _not_joined(channels: list[Channel], kind: str) -> None:
    """A message for a channel from a socket seated nowhere: ``not_joined``; a type nobody knows: ``unknown_type``."""
    for channel in channels:
        if kind in channel.types:
            raise SignalingError("not_joined", f"join a {channel.noun} first")
    raise SignalingError("unknown_type", f"unknown message type {kind[:40]!r}")


async def on_join(socket: SignalingSocket, message: dict[str, Any]) -> None:
    """``join`` goes to the first channel whose id field it carries (the first channel when it carries none,
    which then says which field it needs)."""
    channels: list[Channel] = socket.app[CHANNELS]
    if not channels:
        raise SignalingError("unsupported", "nothing can be joined on this server")
    channel = next((c for c in channels if c.field in message), channels[0])
    await channel.join(socket, message)


async def on_ping(socket: SignalingSocket, message: dict[str, Any]) -> None:
    socket.send({"type": "pong"})


HANDLERS: dict[str, Callable[[SignalingSocket, dict[str, Any]], Awaitable[None]]] = {
    "join": on_join,
    "ping": on_ping,
}


def _close_sockets_of_login(app: web.Application, user_id: str, login_id: str) -> None:
    """A logout ends the sockets opened with that login now (4401: the browser stops reconnecting)."""
    for tab in app[PRESENCE].tabs(user_id):
        if isinstance(tab, SignalingSocket) and tab.context.login_id == login_id:
            tab.error("unauthorized", "your login has ended; sign in again")
            tab.close_soon(CLOSE_UNAUTHORIZED, "login ended")


def close_every_socket(app: web.Application, code: int, reason: str) -> int:
    """Close every signaling socket of this node (it is draining: the browsers reconnect to another node and
    join again). Returns how many."""
    sockets = [tab for user in list(app[PRESENCE].users()) for tab in app[PRESENCE].tabs(user)
               if isinstance(tab, SignalingSocket)]
    for socket in sockets:
        socket.close_soon(code, reason)
    return len(sockets)


def setup(app: web.Application) -> None:
    app[CHANNELS] = []
    app[CLEANUPS] = set()
    app[CLOSED_LISTENERS] = []
    app[SOCKETS] = Holdings(per_user=None, per_address=app[SETTINGS].sockets_per_address,
                            what="signaling connections", code="too_many_connections")
    app.setdefault(LOGOUT_LISTENERS, []).append(functools.partial(_close_sockets_of_login, app))
    app.router.add_get("/ws", websocket)
