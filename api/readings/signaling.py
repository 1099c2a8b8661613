"""The readings channel of the signaling socket: ``join {sessionId}``, then offer, ICE, chat and the end.

A socket joins a reading it is a participant of, once the reader accepted it (and, for a booked reading, within
its join window); the reading's runtime then pushes its state to the socket. The relay answers the browser's
offer for the reading's room. A participant who reconnects replaces their earlier socket.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.core.keys import DATABASE, SETTINGS
from api.core.validation import canonical_uuid
from api.readings import scheduling
from api.readings.live import LIVE_READINGS
from api.readings.runtime import ReadingRuntime, participant_id
from api.readings.states import Actor, State
from api.readings.store import fetch_for, session_json
from api.realtime import transport
from api.realtime.bridge import bridged
from api.realtime.socket import CLOSE_UNAUTHORIZED, SignalingError, SignalingSocket, string_field
from api.realtime.turn import ice_servers_for
from relay import RelayError
from relay.sdp import MAX_SDP_CHARS

log = logging.getLogger(__name__)

MAX_SDP_BYTES = MAX_SDP_CHARS  # the relay's bound (relay.sdp), said here too so a long one is too_large


@dataclass(frozen=True)
class ReadingSeat:
    """What a signaling socket holds while it has joined a reading."""

    session_id: str
    role: Actor
    runtime: ReadingRuntime


class ReadingSignaling:
    """The readings channel (see :class:`api.realtime.socket.Channel`)."""

    field, noun = "sessionId", "session"

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._handlers: dict[str, Callable[[SignalingSocket, ReadingSeat, dict[str, Any]], Awaitable[None]]] = {
            "offer": self._offer, "ice-candidate": self._ice_candidate, "chat-message": self._chat,
            "end-session": self._end, "leave": self._leave,
        }
        self.types = frozenset(self._handlers)
        # Every socket seated on each side of each reading (a reconnecting tab briefly has two), whether it is a
        # browser's socket here or one bridged from another node.
        self._seated: dict[tuple[str, Actor], set[SignalingSocket]] = {}

    async def handle(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        handler = self._handlers.get(message["type"])
        if handler is None:
            raise SignalingError("unknown_type", f"unknown message type {message['type'][:40]!r}")
        # Leaving needs only the seat; everything else needs the reading still running here.
        seat = _seat(socket) if message["type"] != "leave" else _any_seat(socket)
        await handler(socket, seat, message)

    async def join(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        raw = string_field(message, "sessionId", max_len=64)
        await socket.leave_other(self)  # a socket is on one stream or one reading at a time
        session_id = canonical_uuid(raw)
        if session_id is None:
            raise SignalingError("unknown_session", "no such session")
        app = self._app
        # A login revoked (logout) since the socket opened must not join anything.
        if not await socket.logged_in():
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
            scheduling.check_join_window(app[SETTINGS], row)
        live = app[LIVE_READINGS]
        # A reading whose owner stopped (a restart, a failed node) is adopted here once its lease lapses.
        runtime = await live.run(session_id, wait=live.lease_seconds + 1)
        if runtime is None:
            raise SignalingError("unavailable", "this session is not running on this server")
        seat = socket.seat if socket.channel is self else None
        if isinstance(seat, ReadingSeat) and seat.session_id != session_id:
            await self.leave(socket)
        socket.seat_in(self, ReadingSeat(session_id, role, runtime))
        self._seated.setdefault((session_id, role), set()).add(socket)
        socket.send({
            "type": "joined", "sessionId": session_id, "role": role.value,
            "participantId": participant_id(session_id, role),
            "iceServers": ice_servers_for(app[SETTINGS], socket.user_id, time.time()),
            "session": session_json(row),
        })
        runtime.attach(role, socket)
        log.info("joined reading", extra={"userId": socket.user_id, "sessionId": session_id, "role": role.value})

    async def leave(self, socket: SignalingSocket) -> None:
        """Detach the socket from its reading, and close its media unless a newer socket of theirs took over."""
        if socket.channel is not self:
            return
        seat: ReadingSeat = socket.unseat()
        side = self._seated.get((seat.session_id, seat.role))
        if side is not None:
            side.discard(socket)
            if not side:
                del self._seated[(seat.session_id, seat.role)]
        seat.runtime.detach(seat.role, socket)
        # A participant who reconnected has a newer socket on the same relay participant (its re-offer
        # replaced the peer connection): the old socket closing must not tear that down.
        if not self._other_socket_joined(seat, socket):
            with contextlib.suppress(RelayError):
                await self._app[LIVE_READINGS].relay.leave(participant_id(seat.session_id, seat.role))

    async def _offer(self, socket: SignalingSocket, seat: ReadingSeat, message: dict[str, Any]) -> None:
        runtime = seat.runtime
        sdp = string_field(message, "sdp", max_len=MAX_SDP_BYTES)
        if runtime.session_type == "chat":
            raise SignalingError("no_media", "a chat reading carries no audio or video")
        relay = self._app[LIVE_READINGS].relay
        answer = await relay.join_room(seat.session_id, participant_id(seat.session_id, seat.role), sdp)
        now = socket.seat
        if not isinstance(now, ReadingSeat) or now.runtime is not runtime or runtime.finished.is_set():
            # The reading ended (or the socket left) while the relay was answering: take the peer back.
            if not self._other_socket_joined(seat, socket):
                await relay.leave(participant_id(seat.session_id, seat.role))
            raise SignalingError("reading_closed", "the reading has ended")
        socket.send({"type": "answer", "sdp": answer})

    async def _ice_candidate(self, socket: SignalingSocket, seat: ReadingSeat, message: dict[str, Any]) -> None:
        # The relay checks the candidate (relay.ice: the one check for readings and streams): bad_candidate.
        relay = self._app[LIVE_READINGS].relay
        await relay.add_ice_candidate(participant_id(seat.session_id, seat.role), message.get("candidate"))

    async def _chat(self, socket: SignalingSocket, seat: ReadingSeat, message: dict[str, Any]) -> None:
        if "text" not in message:
            raise SignalingError("missing_field", "chat-message needs text")
        await self._app[LIVE_READINGS].chat.post(seat.runtime, seat.role, message["text"])

    async def _end(self, socket: SignalingSocket, seat: ReadingSeat, message: dict[str, Any]) -> None:
        await seat.runtime.end(seat.role, f"ended_by_{seat.role.value}")

    async def _leave(self, socket: SignalingSocket, seat: ReadingSeat, message: dict[str, Any]) -> None:
        await self.leave(socket)
        socket.send({"type": "left"})

    def _other_socket_joined(self, seat: ReadingSeat, socket: SignalingSocket) -> bool:
        return any(other is not socket and isinstance(other.seat, ReadingSeat) and other.seat.runtime is seat.runtime
                   for other in self._seated.get((seat.session_id, seat.role), ()))


def _any_seat(socket: SignalingSocket) -> ReadingSeat:
    seat = socket.seat
    if not isinstance(seat, ReadingSeat):
        raise SignalingError("not_joined", "join a session first")
    return seat


def _seat(socket: SignalingSocket) -> ReadingSeat:
    """The reading a socket has joined, still running here; else the error saying why not."""
    seat = _any_seat(socket)
    if seat.runtime.lost:
        raise SignalingError("reading_moved", "this reading is now run by another server; join it again")
    if seat.runtime.finished.is_set() or seat.runtime.status is State.ENDED:
        raise SignalingError("reading_closed", "the reading has ended")
    return seat


def setup(app: web.Application) -> None:
    """Register the readings channel with the signaling transport (call after :func:`api.realtime.setup`); in a
    cluster, behind the signal bridge, so a socket joins a reading on whichever node runs it."""

    async def home_of(socket: SignalingSocket, message: dict[str, Any], gone: frozenset[str]) -> str | None:
        homes = app[LIVE_READINGS].homes
        return None if homes is None else await homes.home_for_join(socket, message, gone)

    transport.register(app, bridged(app, ReadingSignaling(app), home_of))
