"""Forwarding encoded frames from one publisher's track to many subscribers' senders.

A :class:`Source` is one participant's published media of one kind (their audio, their video). It
outlives the participant's peer connections: when a publisher drops and comes back, the new
connection's receiver becomes the source's new *feed* and every subscriber keeps its track.

A :class:`SubscriberTrack` is one subscriber's outgoing media. Once its sender is started it has
an :class:`~relay.outlet.Outlet`, and the source's fan-out writes each frame (the very ``av.Packet``
the source built, shared by all subscribers) straight to the subscriber's socket. Before that, or
where aiortc's own send chain must be used, frames wait in a bounded queue that the sender reads
with ``recv()`` and packs without encoding. Video starts, and restarts after an overflow or a
backed-up socket, only at a keyframe.

Subscribers *in step* with their source (an outlet, live, video not waiting for a keyframe) are
kept in fan-out groups, one per writer implementation, counters and codec: each frame goes to a
whole group in one ``fanout`` call (``relay.wire``; compiled, one C loop), so the per-frame Python
work does not grow with the audience. The others are pushed to one by one as before, and join a
group as soon as they are in step; a subscriber whose socket backs up leaves it until its next
keyframe.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import av
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from relay.aiortc_hooks import send_pli, send_remb
from relay.backlog import BacklogGuard
from relay.depacketizer import AudioAssembler, VideoAssembler
from relay.keyframes import KeyframeRequester
from relay.outlet import Outlet, frame_time
from relay.packetizer import ForwardCounters, PayloadCache
from relay.wire import FrameWriter, WireKind

logger = logging.getLogger(__name__)

CLOCK_RATES = {"audio": 48000, "video": 90000}
#: Seconds between two REMB caps sent to a video publisher (browsers send theirs about as often).
REMB_INTERVAL = 1.0
#: Seconds before a subscriber still waiting for a keyframe asks again.
REMIND_INTERVAL = 1.0
#: Seconds between two checks that grouped subscribers' connections can still send.
SWEEP_INTERVAL = 1.0
#: Video frames a source keeps from its latest keyframe on, for subscribers that start between
#: keyframes (1 s at 30 fps); a longer group of pictures is not kept.
RECENT_FRAMES = 30


class SubscriberTrack(MediaStreamTrack):
    """One subscriber's outgoing audio or video: encoded frames from whichever source feeds it.

    :param kind: "audio" or "video".
    :param owner: the subscribing participant's id (for logs).
    :param capacity: frames queued before the queue is cleared (video then waits for a keyframe).
    """

    def __init__(
        self,
        kind: str,
        *,
        owner: str,
        capacity: int,
        on_overflow: Callable[[SubscriberTrack, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.owner = owner
        self.codec: str | None = None  # negotiated with the subscriber ("VP8"), set once answered
        self.source: Source | None = None
        self.created_at = time.monotonic()
        self.first_frame_at: float | None = None
        self.overflows = 0
        self._capacity = capacity
        self._on_overflow = on_overflow
        self._queue: deque[av.Packet] = deque()
        self._waiting_keyframe = kind == "video"
        self._keyframes_only = False  # shed by relay.overload: video keyframes only, for a while
        self._reminded_at = time.monotonic()  # the join itself asks for a keyframe
        self._waiter: asyncio.Future[None] | None = None
        self._outlet: Outlet | None = None

    @property
    def direct(self) -> bool:
        """Whether frames go straight to the subscriber's socket (an outlet is attached)."""
        return self._outlet is not None

    def attach_outlet(self, outlet: Outlet) -> None:
        """Send through ``outlet`` from now on; frames queued so far go out through it first."""
        if self.readyState != "live":
            outlet.close()
            return
        self._outlet = outlet
        queued, self._queue = self._queue, deque()
        for packet in queued:
            if not self._send(outlet, packet):
                break
        if self._waiting_keyframe and self.source is not None:
            # Nothing decodable was queued (the join's keyframe request is throttled, or the queue
            # overflowed while DTLS came up): start from the source's latest keyframe, if recent.
            for packet, keyframe in self.source.recent_frames():
                self.push(packet, keyframe)

    def detach_outlet(self, outlet: Outlet) -> None:
        if self._outlet is outlet:
            self._outlet = None
            if self.source is not None:
                self.source.ungroup(self)

    @property
    def outlet(self) -> Outlet | None:
        return self._outlet

    def in_step(self, codec: str | None) -> bool:
        """Whether the source's batched fan-out can serve this track (see the module docstring)."""
        return (
            self._outlet is not None
            and not self._waiting_keyframe
            and not self._keyframes_only
            and self.readyState == "live"
            and (self.codec is None or self.codec == codec)
        )

    @property
    def keyframes_only(self) -> bool:
        return self._keyframes_only

    def shed(self) -> None:
        """Send this video subscriber keyframes only (and so far less work) until :meth:`restore`."""
        if self.kind != "video" or self._keyframes_only:
            return
        self._keyframes_only = True
        if self.source is not None:
            self.source.ungroup(self)

    def restore(self) -> None:
        """Back to every frame, from the next keyframe on (the deltas in between were not sent)."""
        if not self._keyframes_only:
            return
        self._keyframes_only = False
        self._waiting_keyframe = True
        self.request_keyframe("restore")

    def dropped(self) -> None:
        """The batched fan-out could not write a frame: the subscriber's socket is backed up."""
        self._overflowed(False, "socket_full")

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._waiting_keyframe

    def push(self, packet: av.Packet, keyframe: bool) -> None:
        """Queue a frame for the sender; frames a subscriber could not decode are not queued."""
        if self.readyState != "live":
            return
        if self._keyframes_only and not keyframe:
            return
        if self._waiting_keyframe:
            if not keyframe:
                self._remind("waiting")
                return
            self._waiting_keyframe = False
        outlet = self._outlet
        if outlet is not None:
            self._send(outlet, packet)
            return
        if len(self._queue) >= self._capacity:
            self._queue.clear()
            if self._overflowed(keyframe):
                return
        self._queue.append(packet)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _send(self, outlet: Outlet, packet: av.Packet) -> bool:
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        if outlet.send(packet):
            return True
        self._overflowed(False, "socket_full")  # the frame was dropped: the socket is backed up
        return False

    def _overflowed(self, keyframe: bool, reason: str = "queue_overflow") -> bool:
        """Count frames lost for this subscriber; True if video must now wait for a keyframe."""
        self.overflows += 1
        if self.kind == "video" and not keyframe:
            # Never a delta frame after a gap: wait for the next keyframe.
            self._waiting_keyframe = True
        if self._on_overflow is not None:
            self._on_overflow(self, reason)
        if self._waiting_keyframe:
            self.request_keyframe("overflow")
            return True
        return False

    def _remind(self, reason: str) -> None:
        # A request can be lost (the PLI, or the keyframe it asked for): ask again while waiting,
        # at most once per REMIND_INTERVAL per subscriber; the source's requester throttles further.
        now = time.monotonic()
        if now - self._reminded_at >= REMIND_INTERVAL:
            self._reminded_at = now
            self.request_keyframe(reason)

    def request_keyframe(self, reason: str) -> None:
        """Ask the feeding publisher for a keyframe (throttled upstream)."""
        if self.kind == "video" and self.source is not None:
            self.source.request_keyframe(reason)

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.readyState != "live":
            raise MediaStreamError
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        if self._outlet is not None:
            self._outlet.close()
            self._outlet = None
        if self.source is not None:
            self.source.unsubscribe(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class FanoutGroup:
    """A source's subscribers in step with it that share a writer kind, counters and codec."""

    __slots__ = ("codec", "counters", "tracks", "wire", "writers")

    def __init__(self, wire: WireKind, counters: ForwardCounters, codec: str) -> None:
        self.wire = wire
        self.counters = counters
        self.codec = codec
        self.writers: list[FrameWriter] = []
        self.tracks: dict[FrameWriter, SubscriberTrack] = {}


class Source:
    """One participant's published audio or video, fanned out to its subscribers.

    :param kind: "audio" or "video".
    :param owner: the publishing participant's id.
    :param scope: the room or stream id (for logs and events).
    :param keyframe_interval: minimum seconds between two keyframe requests sent upstream.
    :param on_first_frame: called when a new feed delivers its first frame (track published).
    :param max_lag: frames later than this (seconds) behind the feed's best delay are dropped.
    :param max_bitrate: for video, the bitrate cap (bps) announced to the publisher with REMB.
    """

    def __init__(
        self,
        kind: str,
        *,
        owner: str,
        scope: str,
        keyframe_interval: float,
        on_first_frame: Callable[[Source], None] | None = None,
        on_keyframe_request: Callable[[Source, str], None] | None = None,
        on_pli_sent: Callable[[Source], None] | None = None,
        on_codec_mismatch: Callable[[Source, SubscriberTrack], None] | None = None,
        on_stale: Callable[[Source], None] | None = None,
        max_lag: float = 1.0,
        max_bitrate: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self.owner = owner
        self.scope = scope
        self.codec: str | None = None
        self.subscribers: set[SubscriberTrack] = set()
        self._pushed: set[SubscriberTrack] = set()  # subscribers served one by one (not in a group)
        self._groups: dict[tuple[int, int, str], FanoutGroup] = {}
        self._grouped: dict[SubscriberTrack, FanoutGroup] = {}
        self._swept_at = 0.0
        self._recent: list[tuple[av.Packet, bool]] = []  # video: the latest keyframe and the frames since
        self.frames_in = 0
        self._label = f"{scope}/{owner}/{kind}"
        self._time_base = fractions.Fraction(1, CLOCK_RATES[kind])
        self._clock_rate = CLOCK_RATES[kind]
        self._on_first_frame = on_first_frame
        self._on_keyframe_request = on_keyframe_request
        self._on_pli_sent = on_pli_sent
        self._on_codec_mismatch = on_codec_mismatch
        self._on_stale = on_stale
        self._clock = clock
        self._backlog = BacklogGuard(CLOCK_RATES[kind], max_lag)
        self._broken = False  # video: a stale frame was dropped, wait for a keyframe
        self.payload_cache = PayloadCache()
        self._max_bitrate = max_bitrate if kind == "video" else None
        self._remb_at = -1.0
        self._receiver: RTCRtpReceiver | None = None
        self._assembler: AudioAssembler | VideoAssembler | None = None
        self._media_ssrc: int | None = None
        self._feed_origin: int | None = None  # RTP timestamp of the current feed's first frame
        self._pts_base = 0
        self._last_pts: int | None = None
        self._last_frame_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._requester = KeyframeRequester(self._send_pli, interval=keyframe_interval, label=self._label)

    @property
    def live(self) -> bool:
        """Whether a publisher's receiver currently feeds this source."""
        return self._receiver is not None

    @property
    def keyframe_requests_sent(self) -> int:
        return self._requester.sent

    @property
    def stale_frames(self) -> int:
        """Frames dropped as a backlog (see relay.backlog)."""
        return self._backlog.stale

    def attach(
        self, receiver: RTCRtpReceiver, codecs: dict[int, str], media_ssrc: int | None
    ) -> AudioAssembler | VideoAssembler:
        """Make ``receiver`` (a new publisher connection) this source's feed; returns its assembler."""
        self._receiver = receiver
        self._media_ssrc = media_ssrc
        self._feed_origin = None
        self._backlog.reset()
        self._broken = False
        self._recent = []
        assembler: AudioAssembler | VideoAssembler
        if self.kind == "video":
            assembler = VideoAssembler(
                codecs, self._on_frame, lambda: self.request_keyframe("loss")
            )
        else:
            assembler = AudioAssembler(codecs, self._on_frame)
        # Subscribers need no reset: the new feed's assembler starts at a keyframe.
        self._assembler = assembler
        logger.debug("Source(%s) fed by a new receiver (ssrc %s)", self._label, media_ssrc)
        return assembler

    def detach(self, receiver: RTCRtpReceiver) -> None:
        """``receiver``'s connection ended; the source waits for the publisher to return."""
        if self._receiver is receiver:
            self._receiver = None
            self._assembler = None

    def pass_to(self, owner: str) -> None:
        """Carry another participant's media from now on (see :meth:`relay.router.Router.hand_over`); the
        subscribers, the outgoing timeline and the payload numbering stay."""
        self.owner = owner
        self._label = f"{self.scope}/{owner}/{self.kind}"

    def subscribe(self, track: SubscriberTrack) -> None:
        if track.readyState != "live":
            return  # its connection is gone; the router forgets it when the participant leaves
        if track.source is not None and track.source is not self:
            track.source.unsubscribe(track)
        track.source = self
        self.subscribers.add(track)
        self._pushed.add(track)
        track.request_keyframe("join")

    def unsubscribe(self, track: SubscriberTrack) -> None:
        self.ungroup(track)
        self.subscribers.discard(track)
        self._pushed.discard(track)
        if track.source is self:
            track.source = None

    @property
    def grouped(self) -> int:
        """Subscribers served by the batched fan-out."""
        return len(self._grouped)

    def _group(self, track: SubscriberTrack) -> None:
        outlet = track.outlet
        if outlet is None or track in self._grouped:
            return
        key = (id(outlet.wire), id(outlet.counters), outlet.codec)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = FanoutGroup(outlet.wire, outlet.counters, outlet.codec)
        group.writers.append(outlet.writer)
        group.tracks[outlet.writer] = track
        self._grouped[track] = group
        self._pushed.discard(track)

    def ungroup(self, track: SubscriberTrack) -> None:
        """Serve ``track`` one frame at a time again (it fell out of step, or its outlet went)."""
        group = self._grouped.pop(track, None)
        if group is None:
            return
        for writer, owner in group.tracks.items():
            if owner is track:
                del group.tracks[writer]
                group.writers.remove(writer)
                break
        if track in self.subscribers:
            self._pushed.add(track)

    def _ungroup_all(self) -> None:
        for track in list(self._grouped):
            self.ungroup(track)

    def request_keyframe(self, reason: str) -> None:
        if self.kind != "video":
            return
        if self._on_keyframe_request is not None:
            self._on_keyframe_request(self, reason)
        if self._receiver is not None:
            self._requester.request(reason)

    def recent_frames(self) -> list[tuple[av.Packet, bool]]:
        """Video: the latest keyframe and the frames since (``(packet, keyframe)``), if within RECENT_FRAMES."""
        return list(self._recent)

    def video_subscribers(self) -> list[SubscriberTrack]:
        """The subscribers the overload shedder may send keyframes only."""
        return list(self.subscribers) if self.kind == "video" else []

    async def close(self) -> None:
        self._ungroup_all()
        self._requester.close()
        for track in list(self.subscribers):
            self.unsubscribe(track)
        self._receiver = None
        self._assembler = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_frame(self, codec: str, data: bytes, timestamp: int, keyframe: bool) -> None:
        now = self._clock()
        if self._backlog.is_stale(timestamp, now):
            if self._on_stale is not None:
                self._on_stale(self)
            self._recent = []  # what follows is not contiguous with it
            if self.kind == "video" and not self._broken:
                self._broken = True
                self.request_keyframe("late")
            return
        if self._broken:
            if not keyframe:
                self.request_keyframe("late")  # again: the keyframe asked for may itself be dropped
                return
            self._broken = False
        if self._feed_origin is None:
            # A new feed: continue the outgoing timeline where the previous feed left it, so that
            # subscribers see RTP timestamps advance with wall-clock time across the reconnect.
            self._feed_origin = timestamp
            if self._last_pts is not None:
                gap = max(1, int((now - self._last_frame_at) * self._clock_rate))
                self._pts_base = self._last_pts + gap
            if self._on_first_frame is not None:
                self._on_first_frame(self)
        if codec != self.codec:
            self.codec = codec
            self._ungroup_all()
        pts = self._pts_base + timestamp - self._feed_origin
        self._last_pts = pts
        self._last_frame_at = now
        self.frames_in += 1
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        if self.kind == "video":
            if keyframe:
                self._requester.keyframe_seen()
                self._recent = [(packet, True)]
            elif self._recent:
                if len(self._recent) < RECENT_FRAMES:
                    self._recent.append((packet, False))
                else:
                    self._recent = []
        if self._max_bitrate is not None and now - self._remb_at >= REMB_INTERVAL:
            self._remb_at = now
            self._spawn(self._send_remb(self._max_bitrate))
        if self._grouped:
            self._fan_out(packet, now)
        for track in tuple(self._pushed):
            if track.codec is not None and track.codec != codec:
                if self._on_codec_mismatch is not None:
                    self._on_codec_mismatch(self, track)
                continue
            track.push(packet, keyframe)
            if track.in_step(codec):
                self._group(track)  # from the next frame on

    def _fan_out(self, packet: av.Packet, now: float) -> None:
        """Write ``packet`` to every grouped subscriber, a group per call."""
        if now - self._swept_at >= SWEEP_INTERVAL:
            self._swept_at = now
            self._sweep()
        ntp_time = frame_time(packet)
        pts = packet.pts or 0
        for group in list(self._groups.values()):
            writers = group.writers
            if not writers:
                continue
            payloads = self.payload_cache.payloads(group.codec, packet)
            full = group.wire.fanout(writers, payloads, pts, ntp_time)
            count = len(writers)
            counters = group.counters
            counters.frames += count
            counters.packets += count * len(payloads)
            counters.bytes += count * packet.size
            for writer in full:
                track = group.tracks.get(writer)
                if track is not None:
                    track.dropped()
                    if not track.in_step(self.codec):
                        self.ungroup(track)

    def _sweep(self) -> None:
        # Grouped writers are not checked per frame: a connection that can no longer send (DTLS
        # closed, sender disabled, socket closing) is found here, at most SWEEP_INTERVAL later.
        for track in list(self._grouped):
            outlet = track.outlet
            if outlet is None or not outlet.usable() or track.readyState != "live":
                self.ungroup(track)
                if outlet is not None and not outlet.usable():
                    outlet.close()

    def _feed_ssrc(self) -> int | None:
        if self._media_ssrc is not None:
            return self._media_ssrc
        return self._assembler.media_ssrc if self._assembler is not None else None

    def _send_pli(self) -> None:
        receiver, ssrc = self._receiver, self._feed_ssrc()
        if receiver is None or ssrc is None:
            return
        if self._on_pli_sent is not None:
            self._on_pli_sent(self)
        self._spawn(send_pli(receiver, ssrc))

    async def _send_remb(self, bitrate: int) -> None:
        receiver, ssrc = self._receiver, self._feed_ssrc()
        if receiver is not None and ssrc is not None:
            await send_remb(receiver, bitrate, [ssrc])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
