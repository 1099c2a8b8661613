"""The relay: rooms, streams and their participants' peer connections on one node.

This is the surface the signaling layer codes against. It answers offers, enforces caps, and tells
the rest of the system what happened to each participant's media through events (pyee; names and
payloads typed in :mod:`relay.events`), each with the ``time.monotonic()`` at which the relay observed
it, last:

- ``participant-connected`` (scope_id, participant_id, at): ICE and DTLS connected (again).
- ``participant-disconnected`` (scope_id, participant_id, at): the peer stopped answering ICE
  consent checks, or its connection failed or was replaced by a re-join.
- ``participant-failed`` (scope_id, participant_id, at): the connection failed or never connected;
  the relay closes it.
- ``participant-closed`` (scope_id, participant_id, at): the connection was closed for good
  (leave, room/stream closed, relay closed, or cleanup after a failure). Not emitted when a re-join
  replaces the connection.
- ``track-published`` (scope_id, participant_id, kind, at): a publisher's media of ``kind``
  started flowing into the relay (again, after a reconnect).
- ``chat-message`` (scope_id, participant_id, text, at): text on the participant's data channel. The
  relay forwards none of it itself: whoever listens decides what is relayed (``send_chat``), so chat
  limits apply to the data channel too.
- ``room-closed`` (room_id, at), ``stream-closed`` (stream_id, at).

The relay knows nothing of money, users or databases.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from pyee.asyncio import AsyncIOEventEmitter

from relay import events
from relay.aiortc_hooks import ConsentPolicy
from relay.cpu_budget import cpu_budget as detect_cpu_budget
from relay.errors import (
    RelayBusyError,
    RelayClosedError,
    RelayError,
    RelayFullError,
    UnknownParticipantError,
    UnknownRoomError,
    UnknownStreamError,
)
from relay.events import ChatReceived, ParticipantChanged, Payload, RelayEvent, ScopeClosed, TrackPublished
from relay.forwarder import Source, SubscriberTrack
from relay.ice import CandidatePolicy, candidate_from_browser, configuration, ice_servers_from_config
from relay.load import CpuLoad
from relay.metrics import Census, LinkQuality, RelayMetrics
from relay.overload import LoopMonitor, Shedder
from relay.peer import Peer
from relay.room import Room
from relay.router import Router, SourceFactory
from relay.sdp import Offer, check_offer
from relay.stream import Stream
from relay.upstream import Upstream
from relay.wire import PYTHON, wire_kind

#: RFC 7675's pace for a stream's viewers: a check about every 5 s, consent expired after 30 s without an answer.
VIEWER_CONSENT = ConsentPolicy(interval=5.0, lost_after=12.0, expire_after=30.0)
#: Seconds a connecting newcomer counts as joining, for the shedder (relay/overload.py): DTLS and ICE take well under
#: one on a loop that keeps up; a join storm on a loaded relay takes a few.
JOIN_SETTLE = 5.0

logger = logging.getLogger(__name__)


@dataclass
class Participant:
    """Someone in a room or stream, and their current peer connection."""

    id: str
    scope: Room | Stream
    peer: Peer | None = None


class Relay(AsyncIOEventEmitter):
    """The media relay of one node: forwards encoded media between participants' peer connections.

    :param ice_servers: browser-shaped ``RTCIceServer`` dicts; ``[]`` means host candidates only.
    :param max_participants: participants holding a peer connection this node accepts. A participant whose
        connection failed, or never connected within ``connect_timeout``, holds none and does not count.
    :param reserved_for_rooms: of those, how many streams (publishers and viewers) may never take, so that
        readings are not refused because viewers hold the capacity.
    :param max_viewers_per_stream: viewers one stream accepts.
    :param registry: where metrics are registered (a private registry if None, never the global).
    :param keyframe_interval: minimum seconds between two keyframe requests to one publisher.
    :param consent_interval: seconds between ICE consent checks; a peer that answers none for
        ``consent_lost_after`` seconds is reported disconnected, for ``consent_expire_after`` failed.
        Readings are billed on these events, so they are checked fast.
    :param viewer_consent: the consent checks of a stream's viewers (not its publisher, not an edge's pull):
        nobody is billed on a viewer's connection, so they follow RFC 7675's pace (a check every ~5 s, expiry
        after 30 s) instead of one check per second, which per viewer cost the relay more Python than its media.
    :param connect_timeout: a peer not connected this long after its answer is failed and closed.
    :param video_queue_frames, audio_queue_frames: per-subscriber queue bounds.
    :param video_codecs: video codecs the relay negotiates, in order of preference. Publisher and
        subscriber must end up with the same codec (every browser offers VP8).
    :param stats_interval: seconds between RTCP quality polls for the metrics.
    :param max_frame_lag: a frame reaching the relay this many seconds later than the publisher's
        best delay is a backlog and is dropped (video then waits for a keyframe).
    :param max_video_bitrate: the cap (bps) announced to video publishers with REMB once a second;
        the relay runs no bandwidth estimator of its own (see ``relay.aiortc_hooks``).
    :param max_cpu: CPU seconds per second of the relay's event-loop thread (1.0 = one core; the relay
        forwards on that one thread) at which new participants are refused with ``relay_busy``; rejoins are always
        let in. None: no limit.
    :param direct_send: write subscribers' RTP from the fan-out loop (``relay.outlet``); False
        keeps aiortc's per-sender loop and send chain (slower; for comparison and as a fallback).
    :param max_loop_lag: seconds of event-loop lag (the recent median of how late a 50 ms timer fires, while the
        loop's thread uses half a core or more) at which new participants are refused with ``relay_busy``,
        before the loop is late enough to hurt the ones served (``relay.overload``); rejoins are always let
        in. None: no limit.
    :param shed_lag: loop lag (seconds, same measure) at which some video subscribers are sent keyframes only
        for a while (newest first) instead of every viewer losing video together; None: never.
    :param cpu_budget: cores the relay may use (at most 1: it forwards on one thread); the loop counts as
        overloaded at half of it while late (admission) and 0.8 of it (shedding), and full at 0.95 of it (admission,
        late or not). None: from the process's CPU quota and
        affinity (``relay/cpu_budget.py``), so a relay in a container limited to 0.4 of a core defends itself there.
    :param wire: the direct path's writer, "compiled" (``relay/_wire.c``) or "python"; None: the
        compiled one if it was built (see ``relay.wire``).
    :param candidates: which remote ICE candidates are used (:class:`relay.ice.CandidatePolicy`; the
        default uses private and loopback addresses too).
    """

    def __init__(
        self,
        *,
        ice_servers: Sequence[Mapping[str, Any]],
        max_participants: int = 250,
        reserved_for_rooms: int = 0,
        max_viewers_per_stream: int = 1000,
        registry: CollectorRegistry | None = None,
        keyframe_interval: float = 0.5,
        consent_interval: float = 1.0,
        consent_lost_after: float = 2.0,
        consent_expire_after: float = 15.0,
        viewer_consent: ConsentPolicy = VIEWER_CONSENT,
        connect_timeout: float = 30.0,
        video_queue_frames: int = 15,
        audio_queue_frames: int = 25,
        video_codecs: Sequence[str] = ("VP8", "H264"),
        stats_interval: float = 5.0,
        max_frame_lag: float = 1.0,
        max_video_bitrate: int = 1_500_000,
        direct_send: bool = True,
        wire: str | None = None,
        max_loop_lag: float | None = None,
        shed_lag: float | None = None,
        max_cpu: float | None = None,
        cpu_budget: float | None = None,
        cpu_sample_interval: float = 1.0,
        candidates: CandidatePolicy | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= reserved_for_rooms < max_participants:
            raise ValueError("reserved_for_rooms must be at least 0 and below max_participants")
        self._ice_servers = ice_servers_from_config(ice_servers)
        self.max_participants = max_participants
        self.reserved_for_rooms = reserved_for_rooms
        self.max_viewers_per_stream = max_viewers_per_stream
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = RelayMetrics(self.registry, self.census)
        self._keyframe_interval = keyframe_interval
        self._consent = ConsentPolicy(consent_interval, consent_lost_after, consent_expire_after)
        self._viewer_consent = viewer_consent
        self._connect_timeout = connect_timeout
        self._queue_frames = {"video": video_queue_frames, "audio": audio_queue_frames}
        self._video_codecs = tuple(video_codecs)
        self._stats_interval = stats_interval
        self._max_frame_lag = max_frame_lag
        self._max_video_bitrate = max_video_bitrate
        self._direct_send = direct_send
        self._wire = wire_kind(wire) if direct_send else PYTHON
        self.cpu_budget = cpu_budget if cpu_budget is not None else detect_cpu_budget()
        if self.cpu_budget < 1.0:
            logger.info("relay CPU budget: %.2f of a core (CPU quota or affinity)", self.cpu_budget)
        self.loop_monitor = LoopMonitor(max_lag=max_loop_lag if max_loop_lag is not None else 0.03,
                                        min_cpu=0.5 * self.cpu_budget, full_cpu=0.95 * self.cpu_budget)
        self._max_loop_lag = max_loop_lag
        self._shedder = (
            Shedder(self.loop_monitor, self._video_subscribers, high=shed_lag, low=min(0.015, shed_lag / 4),
                    min_cpu=0.8 * self.cpu_budget, joining=self._joining)
            if shed_lag is not None else None
        )
        self._candidates = candidates or CandidatePolicy()
        self.load = CpuLoad(max_cpu, interval=cpu_sample_interval) if max_cpu is not None else None
        self._rooms: dict[str, Room] = {}
        self._streams: dict[str, Stream] = {}
        self._participants: dict[str, Participant] = {}
        self._upstreams: dict[str, Upstream] = {}  # stream id -> this relay's pull of it from its origin
        self._pullers: set[str] = set()  # viewers that are other relays pulling a stream (watch_stream pull=True)
        self._closing_peers: set[asyncio.Task[None]] = set()
        self._stats_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- joining ---------------------------------------------------------------------------------

    async def join_room(self, room_id: str, participant_id: str, offer_sdp: str) -> str:
        """Answer a reading participant's offer; a re-join replaces their previous connection."""
        room = self._rooms.get(room_id) or Room(room_id, make_source=self._source_factory(room_id))
        return await self._join(room, self._rooms, participant_id, offer_sdp, room.admit)

    async def publish_stream(self, stream_id: str, participant_id: str, offer_sdp: str) -> str:
        """Answer a stream publisher's (sendonly) offer; a re-publish replaces the connection."""
        stream = self._stream(stream_id)
        return await self._join(stream, self._streams, participant_id, offer_sdp, stream.admit_publisher)

    async def watch_stream(self, stream_id: str, participant_id: str, offer_sdp: str, *, pull: bool = False) -> str:
        """Answer a viewer's (recvonly) offer. The stream need not have a publisher yet.

        :param pull: the viewer is another relay pulling the stream (:mod:`relay.upstream`): let in even at the
            CPU or loop-lag limit, since it costs one viewer here and serves a whole node's viewers there; and never
            sent keyframes only under overload (``shed_lag``), which would starve all of them.
        """
        stream = self._stream(stream_id)
        answer = await self._join(stream, self._streams, participant_id, offer_sdp, stream.admit_viewer, always=pull,
                                  consent=self._consent if pull else self._viewer_consent)
        if pull:
            self._pullers.add(participant_id)
        return answer

    # -- edges: a stream pulled from its origin's relay (relay.upstream) ---------------------------

    async def pull_stream(self, stream_id: str, puller_id: str,
                          on_state: Callable[[str], None] | None = None) -> str:
        """Start pulling a stream whose publisher is on another relay: returns the offer the origin's relay
        answers with ``watch_stream(stream_id, puller_id, offer)``; apply its answer with :meth:`accept_pull`.
        The pull is this relay's publisher of the stream; a new pull replaces the previous one."""
        self._check_open()
        stream = self._stream(stream_id)
        old = self._upstreams.pop(stream_id, None)
        if old is not None:
            self._track_close(old.close())
        stream.admit_publisher(puller_id)
        self._streams[stream_id] = stream
        upstream = Upstream(stream_id, puller_id, config=configuration(self._ice_servers),
                            publish=lambda kind: stream.router.source(puller_id, kind), on_state=on_state,
                            video_codecs=self._video_codecs)
        self._upstreams[stream_id] = upstream
        return await upstream.offer()

    async def accept_pull(self, stream_id: str, answer_sdp: str) -> None:
        upstream = self._upstreams.get(stream_id)
        if upstream is None:
            raise UnknownStreamError(f"no pull of stream {stream_id}")
        await upstream.accept(answer_sdp)

    def pulling(self, stream_id: str) -> bool:
        """Whether this relay pulls the stream from another relay (it is an edge for it)."""
        return stream_id in self._upstreams

    def pull_state(self, stream_id: str) -> str | None:
        upstream = self._upstreams.get(stream_id)
        return upstream.state if upstream is not None else None

    async def release_pull(self, stream_id: str) -> None:
        """Stop pulling the stream; with no viewer left here, the stream is closed on this relay."""
        ended = await self._end_pull(stream_id)
        if ended is None:
            return
        stream, puller = ended
        await stream.remove(puller)
        if stream.empty:
            await self._close_scope(stream)

    async def hand_over_pull(self, stream_id: str, publisher_id: str) -> None:
        """Stop pulling the stream because its publisher, ``publisher_id``, now publishes here (this relay's node
        became the stream's origin): the viewers here keep their connections and tracks, and what the publisher
        sends continues their outgoing media where the pull left it (same SSRCs, sequence numbers running on,
        timestamps advancing with the clock), as when a publisher drops and returns."""
        ended = await self._end_pull(stream_id)
        if ended is not None:
            stream, puller = ended
            stream.hand_over(puller, publisher_id)

    async def _end_pull(self, stream_id: str) -> tuple[Stream, str] | None:
        """Close the stream's pull; the stream here and the pull's participant id (None: no pull, or no stream)."""
        upstream = self._upstreams.pop(stream_id, None)
        if upstream is None:
            return None
        await upstream.close()
        stream = self._streams.get(stream_id)
        return (stream, upstream.puller_id) if stream is not None else None

    def stream_ids(self) -> list[str]:
        return list(self._streams)

    def viewer_count(self, stream_id: str) -> int:
        """Viewers of the stream on this relay."""
        stream = self._streams.get(stream_id)
        return len(stream.viewers) if stream is not None else 0

    # -- participants ----------------------------------------------------------------------------

    async def add_ice_candidate(self, participant_id: str, candidate: object) -> None:
        """Add a trickled browser candidate; an empty or missing one means end-of-candidates.

        Checked (:func:`relay.ice.candidate_from_browser`) before anything else, so a bad one is
        ``bad_candidate`` whoever sends it.
        """
        parsed = candidate_from_browser(candidate)
        peer = self._peer(participant_id)
        await peer.add_ice_candidate(parsed)

    async def send_chat(self, participant_id: str, text: str) -> None:
        """Send ``text`` to the participant over its data channel, if one is open."""
        peer = self._peer(participant_id)
        if not peer.send_chat(text):
            logger.debug("chat to %s dropped: no open data channel", participant_id)

    def participant_state(self, participant_id: str) -> str | None:
        """new, connecting, connected, disconnected, failed or closed; None if unknown."""
        participant = self._participants.get(participant_id)
        if participant is None or participant.peer is None:
            return None
        return participant.peer.state

    def participant_scope(self, participant_id: str) -> str | None:
        participant = self._participants.get(participant_id)
        return participant.scope.id if participant is not None else None

    def subscriber_tracks(self, participant_id: str) -> dict[str, SubscriberTrack]:
        """The participant's current outgoing tracks by kind (for time-to-first-frame measurements)."""
        participant = self._participants.get(participant_id)
        if participant is None or participant.peer is None:
            return {}
        return dict(participant.peer.tracks)

    def sources(self, scope_id: str) -> list[Source]:
        scope: Room | Stream | None = self._rooms.get(scope_id) or self._streams.get(scope_id)
        return list(scope.router.sources.values()) if scope is not None else []

    async def leave(self, participant_id: str) -> None:
        """Close the participant's connection and forget them; unknown ids are ignored."""
        participant = self._participants.get(participant_id)
        if participant is not None:
            await self._remove(participant)

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            raise UnknownRoomError(f"no room {room_id}")
        await self._close_scope(room)

    async def close_stream(self, stream_id: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStreamError(f"no stream {stream_id}")
        await self._close_scope(stream)

    async def close(self) -> None:
        """Close every room, stream and connection, and stop background work."""
        self._closed = True
        self.loop_monitor.stop()
        if self._shedder is not None:
            self._shedder.stop()
        if self.load is not None:
            self.load.stop()
        scopes: list[Room | Stream] = [*self._rooms.values(), *self._streams.values()]
        for scope in scopes:
            await self._close_scope(scope)
        if self._stats_task is not None:
            self._stats_task.cancel()
            await asyncio.gather(self._stats_task, return_exceptions=True)
            self._stats_task = None
        if self._closing_peers:
            await asyncio.gather(*self._closing_peers, return_exceptions=True)

    # -- internals -------------------------------------------------------------------------------

    def _holds_slot(self, participant: Participant) -> bool:
        """A participant counts against the cap while it has a connection that is not closed (or closing)."""
        return participant.peer is not None and not participant.peer.closed

    def _check_capacity(self, participant_id: str, scope: Room | Stream, *, known: bool) -> None:
        """Refuse a participant that holds no slot when the cap (for streams: the cap less the reserve) is
        reached; one the relay does not know yet also waits out a CPU limit (a known one is being served)."""
        holding = [p for p in self._participants.values() if self._holds_slot(p)]
        if len(holding) >= self.max_participants:
            raise RelayFullError(f"this relay holds {self.max_participants} participants, its maximum")
        if isinstance(scope, Stream):
            on_streams = sum(1 for p in holding if isinstance(p.scope, Stream))
            if on_streams >= self.max_participants - self.reserved_for_rooms:
                raise RelayFullError("this relay holds all the stream participants it takes; "
                                     "the rest is kept for readings")
        if known:
            return
        if self.load is not None:
            self.load.start()
            if self.load.busy:
                logger.warning("refusing %s: relay at its CPU limit (%.2f of a core used, limit %.2f)",
                               participant_id, self.load.rate, self.load.limit)
                raise RelayBusyError("the media server is at capacity right now; please try again in a minute")

    @property
    def busy(self) -> bool:
        """Whether a newcomer would be refused for load now (``relay_busy``): the CPU limit, or the loop late or
        full (what :meth:`_check_capacity` and :meth:`_check_loop` refuse on; the cluster places elsewhere then)."""
        return (self.load is not None and self.load.busy) or (self._max_loop_lag is not None and self.loop_monitor.busy)

    def _check_loop(self, participant_id: str) -> None:
        self._start_overload_watch()
        if self._max_loop_lag is not None and self.loop_monitor.busy:
            logger.warning("refusing %s: relay loop %.0f ms late (limit %.0f ms), its thread at %.2f of a core "
                           "(budget %.2f)", participant_id, self.loop_monitor.lag() * 1000, self._max_loop_lag * 1000,
                           self.loop_monitor.cpu(), self.cpu_budget)
            raise RelayBusyError("the media server is at capacity right now; please try again in a minute")

    def _start_overload_watch(self) -> None:
        if not self._closed:
            self.loop_monitor.start()
            if self._shedder is not None:
                self._shedder.start()

    def _joining(self) -> bool:
        """Whether a newcomer is still connecting (for at most JOIN_SETTLE seconds: a peer that never connects, or a
        stream of them, cannot hold the shedder off for longer)."""
        now = time.monotonic()
        return any(p.peer is not None and p.peer.state in ("new", "connecting")
                   and now - p.peer.created_at < JOIN_SETTLE for p in self._participants.values())

    def _video_subscribers(self) -> list[SubscriberTrack]:
        """What the overload shedder may send keyframes only: every video subscriber but other relays' pulls."""
        scopes: list[Room | Stream] = [*self._rooms.values(), *self._streams.values()]
        return [t for scope in scopes for s in scope.router.sources.values() for t in s.video_subscribers()
                if t.owner not in self._pullers]

    def _check_open(self) -> None:
        if self._closed:
            raise RelayClosedError("the relay is closed")

    def _stream(self, stream_id: str) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = Stream(
                stream_id,
                make_source=self._source_factory(stream_id),
                max_viewers=self.max_viewers_per_stream,
            )
        return stream

    async def _join(
        self,
        scope: Room | Stream,
        registry: dict[str, Any],
        participant_id: str,
        offer_sdp: str,
        admit: Callable[[str], None],
        *,
        always: bool = False,
        consent: ConsentPolicy | None = None,
    ) -> str:
        self._check_open()
        offer = check_offer(offer_sdp, self._candidates)  # before anything is admitted or allocated
        participant = self._participants.get(participant_id)
        if participant is not None and participant.scope is not scope:
            # A participant is in one room or stream at a time: joining another moves them.
            await self._remove(participant)
            participant = None
        try:
            # A re-join of a participant with a live connection replaces it and is always let in.
            if participant is None or not self._holds_slot(participant):
                self._check_capacity(participant_id, scope, known=participant is not None or always)
                if not always:
                    self._check_loop(participant_id)
            admit(participant_id)
        except RelayError as exc:
            self.metrics.refused.labels(exc.code).inc()
            raise
        registry[scope.id] = scope
        if participant is None:
            participant = Participant(participant_id, scope)
        return await self._negotiate(participant, offer, consent or self._consent, read_first=always)

    async def _negotiate(self, participant: Participant, offer: Offer, consent: ConsentPolicy, *,
                         read_first: bool = False) -> str:
        scope = participant.scope
        router = scope.router
        peer = Peer(
            participant_id=participant.id,
            scope=scope.id,
            config=configuration(self._ice_servers),
            consent=consent,
            on_state=self._on_peer_state,
            on_chat=self._on_chat,
            forwarded=self.metrics.forwarded,
            video_codecs=self._video_codecs,
            connect_timeout=self._connect_timeout,
            direct_send=self._direct_send,
            wire=self._wire,
            candidates=self._candidates,
            read_first=read_first,
        )
        old = participant.peer
        participant.peer = peer
        self._participants[participant.id] = participant
        if old is not None:
            self._retire(old)
        self._ensure_stats_task()
        publishes = not isinstance(scope, Stream) or scope.publisher == participant.id
        subscribes = not isinstance(scope, Stream) or scope.publisher != participant.id
        try:
            answer = await peer.answer(
                offer,
                publish=lambda kind: router.source(participant.id, kind) if publishes else None,
                subscribe=lambda kind: self._subscriber_track(router, participant.id, kind)
                if subscribes
                else None,
            )
        except BaseException:
            await peer.close()
            if participant.peer is peer:
                await self._remove(participant)
            raise
        if participant.peer is not peer or peer.closed:
            raise RelayError(f"participant {participant.id} left or re-joined during negotiation",
                             code="superseded")
        logger.info("participant %s joined %s", participant.id, repr(scope))
        return answer

    def _subscriber_track(self, router: Router, participant_id: str, kind: str) -> SubscriberTrack:
        track = SubscriberTrack(
            kind,
            owner=participant_id,
            capacity=self._queue_frames[kind],
            on_overflow=lambda t, reason: self.metrics.forwarding_errors.labels(reason).inc(),
        )
        router.add_track(track)
        return track

    def _source_factory(self, scope_id: str) -> SourceFactory:
        def make_source(participant_id: str, kind: str) -> Source:
            return Source(
                kind,
                owner=participant_id,
                scope=scope_id,
                keyframe_interval=self._keyframe_interval,
                on_first_frame=self._on_first_frame,
                on_keyframe_request=lambda s, reason: self.metrics.keyframe_requests.labels(reason).inc(),
                on_pli_sent=lambda s: self.metrics.keyframe_requests_sent.inc(),
                on_codec_mismatch=self._on_codec_mismatch,
                on_stale=lambda s: self.metrics.forwarding_errors.labels("stale").inc(),
                max_lag=self._max_frame_lag,
                max_bitrate=self._max_video_bitrate,
            )

        return make_source

    def _retire(self, peer: Peer) -> None:
        """A re-join replaced ``peer``: report it gone if it was connected, and close it quietly."""
        if peer.state == "connected":
            self._emit(ParticipantChanged(RelayEvent.PARTICIPANT_DISCONNECTED, peer.scope, peer.participant_id,
                                          time.monotonic()))
        self._track_close(peer.close())

    async def _remove(self, participant: Participant) -> None:
        peer = participant.peer
        if peer is not None:
            await peer.close()  # emits participant-closed while still current
        if self._participants.get(participant.id) is participant:
            del self._participants[participant.id]
            self._pullers.discard(participant.id)
        scope = participant.scope
        await scope.remove(participant.id)
        if scope.empty:
            await self._close_scope(scope)

    async def _close_scope(self, scope: Room | Stream) -> None:
        registry: dict[str, Any] = self._rooms if isinstance(scope, Room) else self._streams
        if registry.get(scope.id) is not scope:
            return
        del registry[scope.id]
        upstream = self._upstreams.pop(scope.id, None) if isinstance(scope, Stream) else None
        if upstream is not None:
            await upstream.close()
        members = [p for p in self._participants.values() if p.scope is scope]
        for participant in members:
            if participant.peer is not None:
                await participant.peer.close()
            if self._participants.get(participant.id) is participant:
                del self._participants[participant.id]
                self._pullers.discard(participant.id)
        await scope.close()
        event = RelayEvent.ROOM_CLOSED if isinstance(scope, Room) else RelayEvent.STREAM_CLOSED
        self._emit(ScopeClosed(event, scope.id, time.monotonic()))
        logger.info("%s closed", repr(scope))

    def _peer(self, participant_id: str) -> Peer:
        participant = self._participants.get(participant_id)
        if participant is None or participant.peer is None:
            raise UnknownParticipantError(f"no participant {participant_id}")
        return participant.peer

    def _is_current(self, peer: Peer) -> bool:
        participant = self._participants.get(peer.participant_id)
        return participant is not None and participant.peer is peer

    def _on_peer_state(self, peer: Peer, state: str, at: float) -> None:
        if state not in ("connected", "disconnected", "failed", "closed") or not self._is_current(peer):
            return
        if state == "failed":
            self.metrics.forwarding_errors.labels("peer_failed").inc()
        self._emit(ParticipantChanged(RelayEvent.participant(state), peer.scope, peer.participant_id, at))

    def _on_chat(self, peer: Peer, text: str) -> None:
        if not self._is_current(peer):
            return
        self._emit(ChatReceived(RelayEvent.CHAT_MESSAGE, peer.scope, peer.participant_id, text, time.monotonic()))

    def _on_first_frame(self, source: Source) -> None:
        self._emit(TrackPublished(RelayEvent.TRACK_PUBLISHED, source.scope, source.owner, source.kind,
                                  time.monotonic()))

    def _on_codec_mismatch(self, source: Source, track: SubscriberTrack) -> None:
        self.metrics.forwarding_errors.labels("codec_mismatch").inc()
        logger.debug("%s/%s sends %s but %s negotiated %s", source.scope, source.owner, source.codec,
                     track.owner, track.codec)

    def _emit(self, payload: Payload) -> None:
        if isinstance(payload, ParticipantChanged):
            self.metrics.participant_events.labels(payload.event.removeprefix("participant-")).inc()
        try:
            events.emit(self, payload)
        except Exception:
            logger.exception("a %s listener failed", payload.event)

    def _track_close(self, task: asyncio.Task[None]) -> None:
        self._closing_peers.add(task)
        task.add_done_callback(self._closing_peers.discard)

    def _spawn(self, coro: Any) -> None:
        self._track_close(asyncio.ensure_future(coro))

    def census(self) -> Census:
        """What the relay holds right now: its metrics, and a node's load in the cluster's registry."""
        return Census(
            peers=sum(1 for p in self._participants.values() if p.peer is not None),
            rooms=len(self._rooms),
            streams=len(self._streams),
            viewers=sum(len(s.viewers) for s in self._streams.values()),
            participants=len(self._participants),
            video_shed=self._shedder.shed_count if self._shedder is not None else 0,
            loop_lag=self.loop_monitor.lag(),
        )

    def _ensure_stats_task(self) -> None:
        if self._stats_task is None and self._stats_interval > 0:
            self._stats_task = asyncio.ensure_future(self._poll_quality())

    async def _poll_quality(self) -> None:
        while True:
            await asyncio.sleep(self._stats_interval)
            up, down = LinkQuality(), LinkQuality()
            peers = [p.peer for p in list(self._participants.values()) if p.peer is not None]
            for peer in peers:
                if peer.state != "connected":
                    continue
                try:
                    quality = await peer.quality()
                except Exception:  # a peer closing under us; its numbers are not worth a crash
                    logger.debug("stats of %s unavailable", repr(peer), exc_info=True)
                    continue
                for total, part in ((up, quality.up), (down, quality.down)):
                    total.fraction_lost += part.fraction_lost
                    total.packets_lost += part.packets_lost
                    total.rtt += part.rtt
            self.metrics.record_quality("up", up)
            self.metrics.record_quality("down", down)
