"""A live stream served by several nodes: its home is the *origin* (the publisher's relay, the audience, the
chat, the gifts, as on one node), and a viewer's media may be answered by another node's relay, an *edge*,
which pulls the stream once from the origin (:mod:`relay.upstream`) and fans it out to its own viewers.

Every socket on a stream still reaches the stream's home through the signal bridge, so the audience is one
(viewer count, leaderboard, chat, gifts and ``stream-state`` are the home's, pushed as on one node). Only a
viewer's ``offer`` (and its ICE candidates, and its leave) goes on to the node chosen for its media
(:meth:`StreamEdges.media_node`): the node holding the viewer's socket when that node serves and its relay is
not at its CPU limit (the load balancer spreads sockets), else the least-loaded such node, else the home. The
chosen node answers with its relay, pulling the stream first if it does not yet (``stream-pull``, answered by
the origin's relay as one more viewer); when its last viewer of the stream leaves, it lets the pull go
(``stream-unpull``). The stream's end reaches every node (``stream-ended``), whose relay closes the stream and
its pull. An edge that dies takes its viewers' media with it, and their browsers offer again (the web client does
when its connection fails), to be placed on a live node.

An origin that dies takes only its own relay's media with it. A viewer whose socket and media are on surviving
nodes keeps both: the socket's node carries its seat over to the stream's new home (api.realtime.bridge,
"resume"), which asks the viewer's media node to keep the viewer (``stream-resume``); that node pulls the stream
from the new origin (the old pull replaced: the same sources, so its viewers' outgoing media runs on, as when a
publisher drops and returns), and once the reader publishes there, the viewers see the picture again. An edge that
is the new origin hands its pull to the reader's new connection (:meth:`StreamEdges.originate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from aiohttp import web

from api.cluster.bus import NodeGone, RemoteError
from api.cluster.link import ClusterUnavailable
from api.cluster.node import ClusterNode
from api.cluster.node_info import SERVING, NodeInfo
from api.cluster.placement import CPU_STEP
from api.core.keys import RELAY
from api.realtime.socket import SignalingError
from relay import Relay, RelayError, events
from relay.events import ParticipantChanged, RelayEvent

log = logging.getLogger(__name__)

WATCH, ICE, UNWATCH, RESUME = "stream-watch", "stream-ice", "stream-unwatch", "stream-resume"
PULL, UNPULL = "stream-pull", "stream-unpull"
PULL_SECONDS = 10.0  # an origin's answer to a pull (and an edge's to a watch) within this
# A viewer here whose stream's home died is kept this long for the stream's new home to claim it (``stream-resume``:
# its socket's node carries its seat over within seconds); one nobody claims by then is let go.
REHOME_SECONDS = 15.0
# Relay states in which a participant holds its place (a failed or closed one has let it go).
HOLDING = frozenset({"new", "connecting", "connected", "disconnected"})


def puller_id(stream_id: str, node_id: str) -> str:
    """The relay participant of a node's pull: the edge stream's publisher, one of the origin's viewers."""
    return f"stream:{stream_id}:edge:{node_id}"


class StreamEdges:
    """Both ends of the cascade on one node: the home sending viewers' media elsewhere, the edge answering them
    and pulling from the origin, and the origin answering pulls."""

    def __init__(self, app: web.Application, node: ClusterNode) -> None:
        self._app = app
        self._node = node
        self._bus = node.bus
        self._locks: dict[str, asyncio.Lock] = {}  # stream id -> its pull's making and letting go
        self._origins: dict[str, str] = {}  # stream id -> the origin this node pulls it from
        # viewer participant here -> (stream id, its home, the node holding its socket)
        self._viewers: dict[str, tuple[str, str, str]] = {}
        self._known: set[str] = set()  # the nodes alive at the last heartbeat
        self._tasks: set[asyncio.Task[Any]] = set()
        node.bus.serve(WATCH, self._serve_watch)
        node.bus.serve(PULL, self._serve_pull)
        node.bus.serve(RESUME, self._serve_resume)
        node.bus.on(ICE, self._on_ice)
        node.bus.on(UNWATCH, self._on_unwatch)
        node.bus.on(UNPULL, self._on_unpull)
        node.registry.on_heartbeat(self._heard)
        events.subscribe(app[RELAY], ParticipantChanged, self._participant_changed)

    @property
    def node_id(self) -> str:
        return self._node.node_id

    @property
    def _relay(self) -> Relay:
        return self._app[RELAY]

    # -- the home: where a viewer's media goes -------------------------------------------------------------

    def media_node(self, socket_node: str | None) -> str:
        """The node whose relay answers a viewer: the socket's node if it takes viewers, else the least-loaded
        one that does (relay CPU in steps, then viewers), else this one (which refuses ``relay_busy`` if busy)."""
        seen = {n.id: n for n in self._node.registry.seen}
        open_ = [n for n in seen.values() if n.state == SERVING and not n.load.busy]
        here = socket_node or self.node_id
        if here not in seen or any(n.id == here for n in open_):
            return here  # not seen at the last heartbeat, but its socket just spoke: it is alive
        if not open_:
            return self.node_id
        return min(open_, key=lambda n: (math.floor(n.load.cpu / CPU_STEP), n.load.viewers, n.id)).id

    async def watch(self, node_id: str, stream_id: str, participant_id: str, sdp: str, socket_node: str) -> str:
        """Have ``node_id``'s relay answer a viewer of a stream homed here (its socket on ``socket_node``); its
        answer SDP."""
        try:
            reply = await self._bus.request(node_id, WATCH, {"streamId": stream_id, "participantId": participant_id,
                                                             "sdp": sdp, "origin": self.node_id,
                                                             "socket": socket_node},
                                            timeout=PULL_SECONDS * 2)
        except RemoteError as exc:
            raise SignalingError(exc.code, exc.message) from None
        return str(reply.get("sdp") or "")

    async def resume(self, node_id: str, stream_id: str, participant_id: str) -> bool:
        """A viewer's seat carried over here, the stream's new home: does its media node still serve it? If so that
        node now answers to this one, pulling the stream from here (this node's relay, if it is that node)."""
        if node_id == self.node_id:
            return self._keep_here(stream_id, participant_id)
        try:
            await self._bus.request(node_id, RESUME, {"streamId": stream_id, "participantId": participant_id},
                                    timeout=PULL_SECONDS)
        except (NodeGone, TimeoutError, ClusterUnavailable, RemoteError) as exc:
            log.info("a resumed viewer's media is gone", extra={"node": node_id, "error": str(exc)})
            return False
        return True

    def _keep_here(self, stream_id: str, participant_id: str) -> bool:
        if not self._serves(stream_id, participant_id):
            return False
        self._viewers.pop(participant_id, None)  # its home is this node now: an ordinary viewer here
        return True

    def _serves(self, stream_id: str, participant_id: str) -> bool:
        """Whether this node's relay holds the participant's connection on the stream."""
        relay = self._relay
        return (relay.participant_scope(participant_id) == stream_id
                and relay.participant_state(participant_id) in HOLDING)

    def ice(self, node_id: str, participant_id: str, candidate: object) -> None:
        self._spawn(self._send(node_id, ICE, {"participantId": participant_id, "candidate": candidate}))

    def unwatch(self, node_id: str, participant_id: str) -> None:
        self._spawn(self._send(node_id, UNWATCH, {"participantId": participant_id}))

    async def _send(self, node_id: str, kind: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(ClusterUnavailable):
            await self._bus.send(node_id, kind, body)

    # -- the edge: viewers answered here, the stream pulled once ---------------------------------------------

    async def _serve_watch(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        stream_id, participant = str(body.get("streamId")), str(body.get("participantId"))
        origin = str(body.get("origin") or sender)
        if not participant.startswith(f"stream:{stream_id}:viewer:"):
            raise RemoteError(400, "bad_field", "not a viewer of that stream")
        try:
            if origin != self.node_id:
                await self._ensure_pull(stream_id, origin)
            answer = await self._relay.watch_stream(stream_id, participant, str(body.get("sdp") or ""))
        except RelayError as exc:
            raise RemoteError(409, exc.code, exc.message) from None
        self._viewers[participant] = (stream_id, sender, str(body.get("socket") or sender))
        return {"sdp": answer}

    async def _serve_resume(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        """``stream-resume`` from a stream's new home: keep this viewer, and pull the stream from there."""
        stream_id, participant = str(body.get("streamId")), str(body.get("participantId"))
        seat = self._viewers.get(participant)
        if seat is None or seat[0] != stream_id or not self._serves(stream_id, participant):
            raise RemoteError(404, "unknown_participant", "no such viewer here")
        self._viewers[participant] = (stream_id, sender, seat[2])
        self._spawn(self._pull_from(stream_id, sender))
        return {}

    async def _pull_from(self, stream_id: str, origin: str) -> None:
        try:
            await self._ensure_pull(stream_id, origin)
        except RelayError as exc:  # its viewers' next offer (their connection failing) tries again
            log.warning("pulling from the stream's new origin failed", extra={"streamId": stream_id,
                                                                              "origin": origin, "error": str(exc)})

    def _on_ice(self, sender: str, body: dict[str, Any]) -> None:
        self._spawn(self._add_ice(str(body.get("participantId")), body.get("candidate")))

    async def _add_ice(self, participant: str, candidate: object) -> None:
        with contextlib.suppress(RelayError):  # checked by the relay; a bad one was the browser's, not ours
            await self._relay.add_ice_candidate(participant, candidate)

    def _on_unwatch(self, sender: str, body: dict[str, Any]) -> None:
        self._spawn(self._unwatch(str(body.get("participantId"))))

    async def _unwatch(self, participant: str) -> None:
        seat = self._viewers.pop(participant, None)
        await self._relay.leave(participant)
        if seat is not None:
            await self.release_if_unwatched(seat[0])

    def _participant_changed(self, change: ParticipantChanged) -> None:
        """A viewer here whose connection closed (hung up, or failed and closed by the relay) leaves, as its home
        would have it leave; the last one lets the pull go. (Its home may be gone, and the ``stream-unwatch``.)"""
        if change.event == RelayEvent.PARTICIPANT_CLOSED and change.participant_id in self._viewers:
            self._spawn(self._unwatch(change.participant_id))

    def _heard(self, nodes: list[NodeInfo]) -> None:
        """Nodes gone since the last heartbeat: their pulls of streams homed here, and the viewers whose socket
        they held, are let go (a killed node says nothing); viewers whose stream's home they were wait for the
        stream's new home to claim them (``stream-resume``), for ``REHOME_SECONDS``."""
        alive = {n.id for n in nodes}
        gone, self._known = self._known - alive, alive
        if not gone:
            return
        log.info("nodes gone: their stream pulls and viewers let go", extra={"nodes": sorted(gone)})
        for stream_id in self._relay.stream_ids():
            for node_id in gone:
                self._spawn(self._relay.leave(puller_id(stream_id, node_id)))
        for participant, (_, home, socket_node) in list(self._viewers.items()):
            if socket_node in gone:
                self._spawn(self._unwatch(participant))
            elif home in gone:
                self._spawn(self._unwatch_unless_rehomed(participant, home))

    async def _unwatch_unless_rehomed(self, participant: str, home: str) -> None:
        await asyncio.sleep(REHOME_SECONDS)
        seat = self._viewers.get(participant)
        if seat is not None and seat[1] == home:
            log.info("a viewer whose stream's home died was not claimed; let go", extra={"home": home})
            await self._unwatch(participant)

    async def _ensure_pull(self, stream_id: str, origin: str) -> None:
        async with self._locks.setdefault(stream_id, asyncio.Lock()):
            relay = self._relay
            if (self._origins.get(stream_id) == origin and relay.pulling(stream_id)
                    and relay.pull_state(stream_id) not in ("failed", "closed")):
                return
            previous = self._origins.pop(stream_id, None)
            if previous is not None and previous != origin:
                await self._send(previous, UNPULL, {"streamId": stream_id, "participantId": self._puller(stream_id)})
            offer = await relay.pull_stream(stream_id, self._puller(stream_id))
            try:
                reply = await self._bus.request(origin, PULL, {"streamId": stream_id, "sdp": offer},
                                                timeout=PULL_SECONDS)
                await relay.accept_pull(stream_id, str(reply.get("sdp") or ""))
            except (NodeGone, TimeoutError, ClusterUnavailable) as exc:
                await relay.release_pull(stream_id)
                raise RelayError(f"the stream's origin did not answer: {exc}", code="origin_unavailable") from None
            except RemoteError as exc:
                await relay.release_pull(stream_id)
                raise RelayError(exc.message, code=exc.code) from None
            self._origins[stream_id] = origin
            log.info("pulling a stream from its origin", extra={"streamId": stream_id, "origin": origin})

    async def release_if_unwatched(self, stream_id: str) -> None:
        """Let the pull go when no viewer of the stream is left here."""
        async with self._locks.setdefault(stream_id, asyncio.Lock()):
            relay = self._relay
            if not relay.pulling(stream_id) or relay.viewer_count(stream_id) > 0:
                return
            origin = self._origins.pop(stream_id, None)
            await relay.release_pull(stream_id)
            if origin is not None:
                await self._send(origin, UNPULL, {"streamId": stream_id, "participantId": self._puller(stream_id)})
            log.info("stream pull released: no viewer left here", extra={"streamId": stream_id, "origin": origin})

    async def originate(self, stream_id: str, publisher: str) -> None:
        """The stream's publisher (relay participant ``publisher``) offers here: this node is its origin now. A pull
        of it made while another node was the origin (which died; the stream was placed here) is handed over to the
        publisher, so the viewers here go on from where the pull left them."""
        async with self._locks.setdefault(stream_id, asyncio.Lock()):
            if not self._relay.pulling(stream_id):
                return
            origin = self._origins.pop(stream_id, None)
            await self._relay.hand_over_pull(stream_id, publisher)
            if origin is not None:
                await self._send(origin, UNPULL, {"streamId": stream_id, "participantId": self._puller(stream_id)})
            log.info("an edge became the stream's origin", extra={"streamId": stream_id, "previous": origin})

    def stream_ended(self, stream_id: str) -> None:
        """The stream ended (its relay stream, pull included, is closed by the channel): forget it here."""
        self._origins.pop(stream_id, None)
        self._locks.pop(stream_id, None)
        for participant in [p for p, seat in self._viewers.items() if seat[0] == stream_id]:
            del self._viewers[participant]

    def pulls(self) -> dict[str, str]:
        """The streams this node pulls, and from which origin."""
        return dict(self._origins)

    def _puller(self, stream_id: str) -> str:
        return puller_id(stream_id, self.node_id)

    # -- the origin: answering pulls --------------------------------------------------------------------------

    async def _serve_pull(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        stream_id = str(body.get("streamId"))
        try:
            answer = await self._relay.watch_stream(stream_id, puller_id(stream_id, sender), str(body.get("sdp") or ""),
                                                    pull=True)
        except RelayError as exc:
            raise RemoteError(409, exc.code, exc.message) from None
        log.info("stream pulled by an edge", extra={"streamId": stream_id, "edge": sender})
        return {"sdp": answer}

    def _on_unpull(self, sender: str, body: dict[str, Any]) -> None:
        stream_id = str(body.get("streamId"))
        self._spawn(self._relay.leave(puller_id(stream_id, sender)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="stream edges")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("stream edge message failed: %s", task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
