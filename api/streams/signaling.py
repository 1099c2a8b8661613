"""The live streams channel of the signaling WebSocket (``/ws``), routed to by :mod:`api.realtime.transport`.

``join {streamId}`` puts the socket on a live stream: the stream's reader is its *publisher* (a sendonly offer,
answered by ``relay.publish_stream``), anyone else a *viewer* (recvonly, ``relay.watch_stream``). On the stream a
socket may send ``offer {sdp}``, ``ice-candidate {candidate}``, ``chat-message {text}`` (rate-limited per viewer,
not stored), ``leave``, and, the publisher only, ``end-stream``. It receives ``joined``, ``answer``,
``stream-state {viewerCount, leaderboard, status}``, ``gift`` and ``chat-message`` (see api/stream_hub.py).

A publisher whose every socket has been gone for ``SOULSEER_GRACE_SECONDS`` ends the stream, so a crashed
browser does not leave a stream live forever; so does a stream created over REST whose publisher never joins
within that time. Either way the reader is set offline (going live had set them online).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.cluster import CLUSTER
from api.cluster.bus import NodeGone
from api.cluster.link import ClusterUnavailable
from api.core.caps import Holdings
from api.core.errors import NotFound, TooManyRequests
from api.core.keys import DATABASE, RELAY, SETTINGS
from api.core.ratelimit import RateLimiter
from api.core.times import now_iso
from api.core.validation import canonical_uuid
from api.realtime import transport
from api.realtime.bridge import bridged, carried_over, keep_resumable
from api.realtime.socket import SignalingError, SignalingSocket
from api.realtime.turn import ice_servers_for
from api.streams.audience import AudienceFull
from api.streams.edges import HOLDING, StreamEdges
from api.streams.homes import StreamHomes
from api.streams.hub import STREAM_HUB, StreamHub
from api.streams.store import fetch_stream, finish_stream, stream_json
from relay import RelayError
from relay.ice import candidate_from_browser
from relay.sdp import MAX_SDP_CHARS as MAX_SDP_BYTES

log = logging.getLogger(__name__)

MAX_CHAT_CHARS = 500
# The per-viewer chat limit counts messages per this many seconds (SOULSEER_STREAM_CHAT_RATE_LIMIT of them).
CHAT_WINDOW_SECONDS = 10.0


@dataclass
class StreamSeat:
    """What a signaling socket holds while it is on a stream."""

    stream_id: str
    reader_id: str
    role: str  # "publisher" | "viewer"
    participant_id: str  # the socket's participant in the relay
    connection_id: str  # the socket in the stream's audience


def publisher_id(stream_id: str) -> str:
    """The relay participant publishing a stream: one per stream, so a re-publish replaces the connection."""
    return f"stream:{stream_id}:publisher"


class StreamSignaling:
    """The live streams channel (see :class:`api.realtime.socket.Channel`): stream messages of one application."""

    field = "streamId"
    noun = "stream"
    types = frozenset({"offer", "ice-candidate", "chat-message", "leave", "end-stream"})

    def __init__(self, app: web.Application) -> None:
        self._app = app
        settings = app[SETTINGS]
        self._chat = RateLimiter(settings.stream_chat_rate_limit, CHAT_WINDOW_SECONDS)
        # Relay participants on streams per user and per address: any free account can watch any stream, so
        # without these a few accounts could take every relay slot (readings keep a reserve in the relay).
        self.participants = Holdings(
            per_user=settings.stream_participants_per_user, per_address=settings.stream_participants_per_address,
            what="stream connections", code="too_many_participants",
            alive=lambda pid: pid in self._media or app[RELAY].participant_state(pid) in HOLDING)
        # Viewers whose media another node's relay answers (api.streams.edges): participant -> that node.
        self._media: dict[str, str] = {}
        self._away: dict[str, asyncio.Task[None]] = {}  # stream id -> ends it unless its publisher returns

    @property
    def _hub(self) -> StreamHub:
        return self._app[STREAM_HUB]

    async def handle(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        kind = message["type"]
        seat = socket.seat if socket.channel is self else None
        if not isinstance(seat, StreamSeat):
            raise SignalingError("not_joined", "join a stream first")
        if kind == "leave":
            await self.leave(socket)
            socket.send({"type": "left", "streamId": seat.stream_id})
            return
        audience = self._hub.audience(seat.stream_id)
        if audience is None or audience.user_of(seat.connection_id) is None:
            raise SignalingError("stream_ended", "this stream has ended")
        if kind == "offer":
            await self._offer(socket, seat, message)
        elif kind == "ice-candidate":
            await self._ice_candidate(seat, message)
        elif kind == "chat-message":
            await self._chat_message(socket, seat, message)
        elif kind == "end-stream":
            if seat.role != "publisher":
                raise SignalingError("forbidden", "only the stream's reader can end it")
            await finish_stream(self._app, seat.stream_id, reason="ended_by_reader")
        else:
            raise SignalingError("unknown_type", f"unknown message type on a stream {kind[:40]!r}")

    # -- joining and leaving -----------------------------------------------------------------------------------
    async def join(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        await socket.leave_other(self)  # a socket is on one stream or one reading at a time
        stream_id = canonical_uuid(message.get("streamId"))
        if stream_id is None:
            raise SignalingError("unknown_stream", "no such stream")
        if socket.channel is self:
            await self.leave(socket)
        try:
            row = await fetch_stream(self._app[DATABASE].pool, stream_id)
        except NotFound:
            raise SignalingError("unknown_stream", "no such stream") from None
        if row["status"] != "live":
            raise SignalingError("stream_ended", "this stream has ended")
        reader_id = str(row["reader_id"])
        connection_id = uuid.uuid4().hex
        role = "publisher" if socket.user_id == reader_id else "viewer"
        participant = publisher_id(stream_id) if role == "publisher" else f"stream:{stream_id}:viewer:{connection_id}"
        kept = await self._kept_media(socket, stream_id) if role == "viewer" else None
        media: str | None = None
        if kept is not None:
            participant, media = kept
            connection_id = participant.removeprefix(f"stream:{stream_id}:viewer:")

        new_audience = self._hub.audience(stream_id) is None
        try:
            self._hub.join(stream_id, reader_id, connection_id, socket.user_id, socket.send)
        except AudienceFull as exc:
            raise SignalingError("stream_full", str(exc)) from None
        socket.seat_in(self, StreamSeat(stream_id, reader_id, role, participant, connection_id))
        if role == "publisher":
            self._publisher_back(stream_id)
        elif new_audience:
            # The stream's first socket here is a viewer's (its home died and it was placed here, or a restart left
            # it live): it ends unless its reader joins within the grace period, as a stream gone live does.
            self._publisher_away(stream_id)
        if media is not None:
            self._carried_over(socket, participant, media)
        else:
            socket.send({"type": "joined", "role": role, "streamId": stream_id, "participantId": participant,
                         "iceServers": ice_servers_for(self._app[SETTINGS], socket.user_id, time.time()),
                         "stream": stream_json(row, self._hub)})
        socket.send(await self._hub.state(stream_id))

    async def _kept_media(self, socket: SignalingSocket, stream_id: str) -> tuple[str, str] | None:
        """A viewer's seat carried over from the stream's home that died (``socket.resume``, set by the signal
        bridge only): its relay participant and the node whose relay still serves it, if one does; None for an
        ordinary join."""
        token, edges = socket.resume, self._app.get(STREAM_EDGES)
        if token is None or edges is None:
            return None
        participant, media = str(token.get("participantId") or ""), str(token.get("media") or "")
        if not participant.startswith(f"stream:{stream_id}:viewer:") or not media:
            return None
        return (participant, media) if await edges.resume(media, stream_id, participant) else None

    def _carried_over(self, socket: SignalingSocket, participant: str, media: str) -> None:
        """Seat a carried-over viewer as it was: no ``joined`` (its browser keeps its peer connection), its media
        where it is; and its socket's node told again, for this seat, how to carry it over once more."""
        edges = self._app[STREAM_EDGES]
        with contextlib.suppress(TooManyRequests):  # it held its place before its home died: never refused for it
            self.participants.claim(participant, socket.user_id, socket.address)
        if media != edges.node_id:
            self._media[participant] = media
            keep_resumable(socket, {"participantId": participant, "media": media})
        log.info("a viewer's seat carried over; its media kept", extra={"userId": socket.user_id, "media": media})

    async def leave(self, socket: SignalingSocket) -> None:
        """Take the socket off its stream (also when the socket closes) and let its media go."""
        if socket.channel is not self:
            return
        seat = socket.unseat()
        if not isinstance(seat, StreamSeat):
            return
        self._hub.leave(seat.stream_id, seat.connection_id)
        audience = self._hub.audience(seat.stream_id)
        still_publishing = audience is not None and audience.publisher_connected
        if seat.role == "viewer" and carried_over(socket) and seat.participant_id in self._media:
            # This node stops and the socket's node carries the seat over, media and all, to the stream's next home.
            self.participants.release(seat.participant_id)
            del self._media[seat.participant_id]
        elif seat.role == "viewer" or not still_publishing:
            # Another tab of the reader may have re-published on the same relay participant: keep that one.
            self.participants.release(seat.participant_id)
            await self._let_media_go(seat.participant_id)
        if seat.role == "publisher" and not still_publishing:
            self._publisher_away(seat.stream_id)
        log.info("stream left", extra={"streamId": seat.stream_id, "userId": socket.user_id, "role": seat.role})

    # -- media -------------------------------------------------------------------------------------------------
    async def _offer(self, socket: SignalingSocket, seat: StreamSeat, message: dict[str, Any]) -> None:
        sdp = message.get("sdp")
        if not isinstance(sdp, str) or not sdp:
            raise SignalingError("missing_field", "offer needs sdp")
        if len(sdp) > MAX_SDP_BYTES:
            raise SignalingError("too_large", "sdp is too long")
        relay = self._app[RELAY]
        with self.participants.holding(seat.participant_id, socket.user_id, socket.address):
            if seat.role == "publisher":
                edges = self._app.get(STREAM_EDGES)
                if edges is not None:
                    await edges.originate(seat.stream_id, seat.participant_id)
                answer = await relay.publish_stream(seat.stream_id, seat.participant_id, sdp)
            else:
                answer = await self._watch(socket, seat, sdp)
        if socket.seat is not seat:
            # The socket left (or the stream ended) while the relay was answering: take the peer back.
            if seat.role == "viewer":
                self.participants.release(seat.participant_id)
                await self._let_media_go(seat.participant_id)
            raise SignalingError("stream_ended", "you left the stream")
        socket.send({"type": "answer", "sdp": answer})

    async def _watch(self, socket: SignalingSocket, seat: StreamSeat, sdp: str) -> str:
        """A viewer's answer: from this node's relay, or in a cluster from the node chosen for its media (an edge
        pulling the stream from here); that node gone or busy meanwhile: from this one."""
        pid = seat.participant_id
        edges = self._app.get(STREAM_EDGES)
        target = edges.media_node(socket.bridged_from) if edges is not None else None
        if self._media.get(pid) not in (None, target):
            await self._let_media_go(pid)  # a re-offer placed elsewhere: the old connection goes
        if edges is not None and target is not None and target != edges.node_id:
            if pid not in self._media:
                with contextlib.suppress(RelayError):
                    await self._app[RELAY].leave(pid)  # answered here before
            try:
                answer = await edges.watch(target, seat.stream_id, pid, sdp, socket.bridged_from or edges.node_id)
                self._media[pid] = target
                # Its media outlives this node: should this node die, the socket's node carries the seat over.
                keep_resumable(socket, {"participantId": pid, "media": target})
                return answer
            except (NodeGone, TimeoutError, ClusterUnavailable) as exc:
                log.warning("a viewer's edge did not answer; served here", extra={"node": target, "error": str(exc)})
            except SignalingError as exc:
                if exc.code not in ("relay_busy", "origin_unavailable"):
                    raise
                log.info("a viewer's edge refused; served here", extra={"node": target, "code": exc.code})
        keep_resumable(socket, None)  # its media dies with this node
        return await self._app[RELAY].watch_stream(seat.stream_id, pid, sdp)

    async def _let_media_go(self, participant_id: str) -> None:
        node = self._media.pop(participant_id, None)
        edges = self._app.get(STREAM_EDGES)
        if node is not None and edges is not None:
            edges.unwatch(node, participant_id)
            return
        with contextlib.suppress(RelayError):
            await self._app[RELAY].leave(participant_id)

    async def _ice_candidate(self, seat: StreamSeat, message: dict[str, Any]) -> None:
        # Checked by the relay, as a reading's are (relay.ice.candidate_from_browser): bad_candidate.
        node = self._media.get(seat.participant_id)
        edges = self._app.get(STREAM_EDGES)
        if node is not None and edges is not None:
            candidate_from_browser(message.get("candidate"))  # checked here too, so a bad one is refused here
            edges.ice(node, seat.participant_id, message.get("candidate"))
            return
        await self._app[RELAY].add_ice_candidate(seat.participant_id, message.get("candidate"))

    # -- chat --------------------------------------------------------------------------------------------------
    async def _chat_message(self, socket: SignalingSocket, seat: StreamSeat, message: dict[str, Any]) -> None:
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            raise SignalingError("bad_field", "chat-message needs a non-empty text")
        text = text.strip()
        if len(text) > MAX_CHAT_CHARS or "\x00" in text:
            raise SignalingError("too_large", f"chat messages are limited to {MAX_CHAT_CHARS} characters")
        wait = self._chat.hit(f"{seat.stream_id}:{socket.user_id}")
        if wait > 0:
            raise SignalingError("rate_limited", f"too many chat messages; wait {wait:.0f} s")
        await self._hub.broadcast(seat.stream_id, {
            "type": "chat-message", "streamId": seat.stream_id,
            "from": socket.user_id, "fromName": socket.user.display_name, "role": seat.role,
            "text": text, "at": now_iso(),
        })

    # -- the publisher coming and going ------------------------------------------------------------------------
    def _publisher_away(self, stream_id: str) -> None:
        if stream_id not in self._away:
            grace = self._app[SETTINGS].grace_seconds
            self._away[stream_id] = asyncio.create_task(self._end_unless_back(stream_id, grace),
                                                        name=f"stream {stream_id} publisher away")

    def _publisher_back(self, stream_id: str) -> None:
        task = self._away.pop(stream_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _end_unless_back(self, stream_id: str, grace: float) -> None:
        try:
            await asyncio.sleep(grace)
            audience = self._hub.audience(stream_id)
            if audience is None or not audience.publisher_connected:
                await finish_stream(self._app, stream_id, reason="publisher_gone", reader_gone=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ending an abandoned stream failed", extra={"streamId": stream_id})
        finally:
            if self._away.get(stream_id) is asyncio.current_task():
                del self._away[stream_id]

    async def stream_started(self, stream_id: str) -> None:
        """A stream went live over REST: it ends unless its publisher joins within the grace period."""
        self._publisher_away(stream_id)

    async def stream_ended(self, stream_id: str) -> None:
        """The stream ended (any node's REST call on this one, or the grace above): close its media."""
        self._publisher_back(stream_id)
        edges = self._app.get(STREAM_EDGES)
        if edges is not None:
            edges.stream_ended(stream_id)
        with contextlib.suppress(RelayError):
            await self._app[RELAY].close_stream(stream_id)  # on an edge: its pull too

    async def start(self) -> None:
        """Streams left live by a previous process have no publisher here: each ends unless its reader comes back
        within the grace period. (A stream lives on one node; several nodes serving one stream are not supported.)
        """
        rows = await self._app[DATABASE].pool.fetch("SELECT id FROM streams WHERE status = 'live'")
        for row in rows:
            self._publisher_away(str(row["id"]))
        if rows:
            log.info("live streams waiting for their readers", extra={"count": len(rows)})

    async def close(self) -> None:
        tasks, self._away = list(self._away.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


STREAM_SIGNALING = web.AppKey("stream_signaling", StreamSignaling)


async def _running(app: web.Application):  # type: ignore[no-untyped-def]
    homes = app.get(STREAM_HOMES)
    if homes is None:
        await app[STREAM_SIGNALING].start()
    else:
        await homes.start()  # in a cluster: only the streams placed on this node wait for their readers here
    yield
    if homes is not None:
        await homes.close()
    edges = app.get(STREAM_EDGES)
    if edges is not None:
        await edges.close()
    await app[STREAM_SIGNALING].close()


STREAM_HOMES = web.AppKey("stream_homes", StreamHomes)
STREAM_EDGES = web.AppKey("stream_edges", StreamEdges)


def setup(app: web.Application) -> None:
    """Register the live streams channel with the signaling transport (after streams.setup and realtime.setup); in
    a cluster, behind the signal bridge, so every socket on a stream is on the stream's home node."""
    handler = StreamSignaling(app)
    app[STREAM_SIGNALING] = handler
    hub = app[STREAM_HUB]
    node = app.get(CLUSTER)
    if node is None:
        transport.register(app, handler)
    else:
        homes = StreamHomes(app, node, hub, handler.stream_started)
        app[STREAM_HOMES] = homes
        app[STREAM_EDGES] = StreamEdges(app, node)
        hub.peers = homes
        transport.register(app, bridged(app, handler, homes.home_of))
    hub.on_start(handler.stream_started)
    hub.on_end(handler.stream_ended)
    app.cleanup_ctx.append(_running)
