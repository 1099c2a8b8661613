"""Sources fan one shared packet out to subscriber tracks; tracks start and restart at keyframes only."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import pytest
from aiortc.mediastreams import MediaStreamError
from hypothesis import given
from hypothesis import strategies as st

from relay.backlog import BacklogGuard
from relay.forwarder import Source, SubscriberTrack
from relay.packetizer import ForwardCounters
from relay.wire import WireKind
from tests.relay.test_depacketizer import DELTA, KEY, stream


def packet(n: int) -> av.Packet:
    p = av.Packet(b"x")
    p.pts = n
    return p


async def test_video_subscriber_gets_nothing_until_a_keyframe() -> None:
    track = SubscriberTrack("video", owner="v", capacity=10)
    track.push(packet(0), keyframe=False)
    track.push(packet(1), keyframe=False)
    assert track.waiting_for_keyframe
    track.push(packet(2), keyframe=True)
    track.push(packet(3), keyframe=False)
    assert [(await track.recv()).pts for _ in range(2)] == [2, 3]


async def test_overflow_clears_the_queue_and_waits_for_the_next_keyframe() -> None:
    overflows: list[SubscriberTrack] = []
    track = SubscriberTrack("video", owner="v", capacity=3, on_overflow=lambda t, reason: overflows.append(t))
    track.push(packet(0), keyframe=True)
    for n in range(1, 6):
        track.push(packet(n), keyframe=False)
    assert overflows == [track] and track.waiting_for_keyframe
    track.push(packet(6), keyframe=False)
    track.push(packet(7), keyframe=True)
    assert (await track.recv()).pts == 7


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=200))
def test_a_delta_frame_is_never_forwarded_after_a_gap(events: list[tuple[bool, bool]]) -> None:
    """Whatever the mix of keyframes, deltas and reads, what comes out decodes: it starts at a
    keyframe, and every run after a cleared queue starts at a keyframe too."""

    async def run() -> None:
        track = SubscriberTrack("video", owner="v", capacity=4)
        sent: list[tuple[int, bool]] = []
        out: list[int] = []
        for n, (keyframe, read) in enumerate(events):
            sent.append((n, keyframe))
            track.push(packet(n), keyframe)
            if read and track._queue:
                out.append((await track.recv()).pts)
        while track._queue:
            out.append((await track.recv()).pts)
        is_key = dict(sent)
        for i, pts in enumerate(out):
            previous = out[i - 1] if i else None
            if previous is None or pts != previous + 1:
                assert is_key[pts], f"frame {pts} follows a gap but is not a keyframe: {out}"

    asyncio.run(run())


async def test_stopped_track_ends_the_senders_recv() -> None:
    track = SubscriberTrack("audio", owner="v", capacity=4)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting


class SilentReceiver:
    """Stands in for aiortc's RTCRtpReceiver: the source only sends PLIs (and REMBs) through it."""

    def __init__(self) -> None:
        self.plis: list[int] = []
        self._RTCRtpReceiver__rtcp_ssrc = None  # no REMB

    async def _send_rtcp_pli(self, media_ssrc: int) -> None:
        self.plis.append(media_ssrc)


async def test_source_shares_one_packet_object_among_all_subscribers() -> None:
    source = Source("video", owner="pub", scope="s", keyframe_interval=0.5)
    tracks = [SubscriberTrack("video", owner=f"v{i}", capacity=10) for i in range(5)]
    for track in tracks:
        track.codec = "VP8"
        source.subscribe(track)
    receiver: Any = SilentReceiver()
    assembler = source.attach(receiver, {97: "VP8"}, media_ssrc=1234)
    for frame in stream([KEY, DELTA]):
        for rtp in frame:
            assembler.add(rtp)
    firsts = [await t.recv() for t in tracks]
    seconds = [await t.recv() for t in tracks]
    assert all(p is firsts[0] for p in firsts) and all(p is seconds[0] for p in seconds)
    assert bytes(firsts[0]) == KEY and seconds[0].pts - firsts[0].pts == 3000
    assert source.codec == "VP8" and source.frames_in == 2
    await source.close()


async def test_a_returning_publisher_continues_the_subscribers_timeline() -> None:
    source = Source("video", owner="pub", scope="s", keyframe_interval=0.5)
    track = SubscriberTrack("video", owner="v", capacity=10)
    source.subscribe(track)
    receiver: Any = SilentReceiver()
    for _ in range(2):  # the same publisher, two connections: timestamps restart from scratch
        assembler = source.attach(receiver, {97: "VP8"}, media_ssrc=1)
        for frame in stream([KEY, DELTA]):
            for rtp in frame:
                assembler.add(rtp)
    pts = [(await track.recv()).pts for _ in range(4)]
    assert pts == sorted(pts) and len(set(pts)) == 4
    await source.close()


def test_backlog_guard_flags_frames_late_behind_their_media_clock() -> None:
    guard = BacklogGuard(90000, max_lag=0.5)
    # 30 fps arriving on time (base delay 20 ms, some jitter): nothing is stale.
    assert not any(guard.is_stale(n * 3000, 100.02 + n / 30 + (0.05 if n % 7 == 0 else 0)) for n in range(60))
    # The relay stalls for 1 s; the backlog then arrives in a burst.
    burst = [guard.is_stale(n * 3000, 103.0 + (n - 60) * 0.001) for n in range(60, 90)]
    assert burst[0] and not burst[-1], "the oldest frames of the backlog are stale, the newest are not"


def test_backlog_guard_follows_slow_clock_drift() -> None:
    guard = BacklogGuard(48000, max_lag=0.5)
    # The publisher's clock runs 100 ppm slow for an hour: 0.36 s of drift, never a backlog.
    assert not any(guard.is_stale(n * 960, n * 0.02 * 1.0001) for n in range(0, 180000, 7))


async def test_a_stale_video_frame_makes_the_source_wait_for_a_keyframe() -> None:
    now = [0.0]
    source = Source("video", owner="pub", scope="s", keyframe_interval=0.5, max_lag=0.3, clock=lambda: now[0])
    track = SubscriberTrack("video", owner="v", capacity=50)
    source.subscribe(track)
    receiver: Any = SilentReceiver()
    assembler = source.attach(receiver, {97: "VP8"}, media_ssrc=1)
    frames = stream([KEY, DELTA, DELTA, DELTA, KEY])
    arrivals = [0.0, 1 / 30, 2 / 30 + 1.0, 3 / 30 + 1.0, 4 / 30 + 0.01]  # frames 2-3 a second late
    for frame, arrival in zip(frames, arrivals, strict=True):
        now[0] = arrival
        for rtp in frame:
            assembler.add(rtp)
    forwarded = [bytes(await track.recv()) for _ in range(3)]
    assert forwarded == [KEY, DELTA, KEY], "the late deltas are dropped, the next keyframe resumes"
    await source.close()


def test_backlog_guard_accepts_a_lasting_delay_change_instead_of_dropping_forever() -> None:
    guard = BacklogGuard(90000, max_lag=0.5)
    for n in range(30):
        assert not guard.is_stale(n * 3000, n / 30)
    # From now on every frame arrives 2 s later than before (a relay that stays behind).
    verdicts = [guard.is_stale(n * 3000, 2.0 + n / 30) for n in range(30, 120)]
    assert verdicts[0] and not any(verdicts[30:]), "dropped for about max_lag, then forwarded again"
    assert guard.rebased == 1


async def test_a_source_waiting_for_a_keyframe_keeps_asking_if_the_keyframe_is_lost_too() -> None:
    now = [0.0]
    source = Source(
        "video", owner="pub", scope="s", keyframe_interval=0.05, max_lag=0.3, clock=lambda: now[0]
    )
    receiver: Any = SilentReceiver()
    assembler = source.attach(receiver, {97: "VP8"}, media_ssrc=7)
    frames = stream([KEY, DELTA, KEY] + [DELTA] * 10)
    arrivals = [0.0, 1 / 30 + 1.0, 2 / 30 + 1.0] + [(3 + i) / 30 + 0.01 for i in range(10)]

    async def deliver(i: int) -> None:
        now[0] = arrivals[i]
        for rtp in frames[i]:
            assembler.add(rtp)
        await asyncio.sleep(0.03)  # real time for the throttled requester's timer

    for i in range(3):  # a delta and then the keyframe it asked for both arrive a second late
        await deliver(i)
    assert len(receiver.plis) == 1
    for i in range(3, 13):  # back on time, but only deltas: the source must ask again
        await deliver(i)
    assert len(receiver.plis) >= 2 and set(receiver.plis) == {7}
    await source.close()


class RecordingOutlet:
    """Stands in for a started sender's outlet and its writer: records the pts of what it is sent,
    one frame at a time (``send``) or by the source's batched fan-out (``wire.fanout``)."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.codec = "VP8"
        self.counters = ForwardCounters()
        self.writer = self
        self.wire = WireKind("recording", RecordingOutlet, self._fanout)

    def send(self, packet: av.Packet) -> bool:
        self.sent.append(packet.pts)
        return True

    @staticmethod
    def _fanout(writers: list[Any], payloads: list[bytes], pts: int, ntp_time: int) -> list[Any]:
        for writer in writers:
            writer.sent.append(pts)
        return []

    def usable(self) -> bool:
        return True

    def close(self) -> None:
        pass


def test_a_subscriber_starting_between_keyframes_begins_at_the_sources_latest_keyframe() -> None:
    source = Source("video", owner="publisher", scope="s", keyframe_interval=60.0)
    for pts, keyframe in enumerate([True, False, False, True, False, False]):
        source._on_frame("VP8", b"\x00" * 50, pts * 3000, keyframe)
    track = SubscriberTrack("video", owner="late", capacity=15)
    source.subscribe(track)
    outlet = RecordingOutlet()
    track.attach_outlet(outlet)  # type: ignore[arg-type]
    assert outlet.sent == [9000, 12000, 15000], "the latest keyframe and the frames since, in order"
    assert not track.waiting_for_keyframe
    source._on_frame("VP8", b"\x00" * 50, 18000, False)
    source._on_frame("VP8", b"\x00" * 50, 21000, False)
    assert outlet.sent[3:] == [18000, 21000], "then live frames follow (the second by the batched fan-out)"
    assert source.grouped == 1
