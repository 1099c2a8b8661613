"""Frame assembly in place of aiortc's jitter buffer: whole frames at once, nothing after a loss."""

from __future__ import annotations

from aiortc.rtp import RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from relay.depacketizer import AudioAssembler, Unwrapper, VideoAssembler

VP8 = 97
KEY = b"\x10\x02\x00\x9d\x01\x2a" + b"k" * 20  # P bit 0 + start code: a keyframe
DELTA = b"\x11\x02\x00" + b"d" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def vp8_packets(seq: int, timestamp: int, frame: bytes, parts: int) -> list[RtpPacket]:
    """Split ``frame`` into ``parts`` RTP packets with RFC 7741 descriptors, as a sender would."""
    size = -(-len(frame) // parts)
    chunks = [frame[i : i + size] for i in range(0, len(frame), size)]
    packets = []
    for i, chunk in enumerate(chunks):
        packet = RtpPacket(payload_type=VP8, sequence_number=(seq + i) % 65536, timestamp=timestamp)
        packet.marker = int(i == len(chunks) - 1)
        packet.payload = bytes([0x10 if i == 0 else 0x00]) + chunk
        packet._data = chunk  # type: ignore[attr-defined]  # what aiortc's depayloader sets
        packets.append(packet)
    return packets


def stream(frames: list[bytes], *, start_seq: int = 0, parts: int = 3) -> list[list[RtpPacket]]:
    out, seq = [], start_seq
    for n, frame in enumerate(frames):
        packets = vp8_packets(seq, 3000 * n, frame, parts)
        seq += len(packets)
        out.append(packets)
    return out


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int, bool]] = []
        self.keyframe_requests = 0

    def on_frame(self, codec: str, data: bytes, timestamp: int, keyframe: bool) -> None:
        assert codec == "VP8"
        self.frames.append((data, timestamp, keyframe))

    def need_keyframe(self) -> None:
        self.keyframe_requests += 1


def assembler(rec: Recorder, clock: Clock | None = None) -> VideoAssembler:
    return VideoAssembler({VP8: "VP8"}, rec.on_frame, rec.need_keyframe, max_wait=0.3, clock=clock or Clock())


def test_a_frame_is_released_as_soon_as_its_marker_packet_arrives() -> None:
    rec = Recorder()
    asm = assembler(rec)
    packets = stream([KEY])[0]
    for packet in packets[:-1]:
        asm.add(packet)
    assert rec.frames == []
    assert asm.add(packets[-1]) == (False, None)  # nothing for aiortc's decoder queue, no PLI
    assert rec.frames == [(KEY, 0, True)]


def test_reordered_packets_are_put_back_in_order() -> None:
    rec = Recorder()
    asm = assembler(rec)
    frames = stream([KEY, DELTA, DELTA])
    packets = [p for frame in frames for p in frame]
    packets[1], packets[2] = packets[2], packets[1]
    packets[4], packets[6] = packets[6], packets[4]
    for packet in packets:
        asm.add(packet)
    assert [f[0] for f in rec.frames] == [KEY, DELTA, DELTA]
    assert [f[1] for f in rec.frames] == [0, 3000, 6000]


def test_stream_that_starts_with_delta_frames_waits_for_a_keyframe_and_asks_for_one() -> None:
    rec = Recorder()
    asm = assembler(rec)
    for frame in stream([DELTA, DELTA, KEY, DELTA]):
        for packet in frame:
            asm.add(packet)
    assert [f[2] for f in rec.frames] == [True, False]
    assert rec.keyframe_requests == 2


def test_an_unrecovered_loss_drops_frames_until_the_next_keyframe() -> None:
    clock = Clock()
    rec = Recorder()
    asm = assembler(rec, clock)
    frames = stream([KEY, DELTA, DELTA, DELTA, KEY, DELTA])
    for packet in frames[0]:
        asm.add(packet)
    lost = frames[1][1]
    for frame in frames[1:4]:
        for packet in frame:
            if packet is not lost:
                asm.add(packet)
                clock.now += 0.2  # the retransmission never comes
    for frame in frames[4:]:
        for packet in frame:
            asm.add(packet)
    kinds = [f[2] for f in rec.frames]
    assert kinds == [True, True, False], "after the loss: the keyframe, then deltas that follow it"
    assert asm.losses == 1 and rec.keyframe_requests >= 1


def test_a_retransmission_within_the_wait_fills_the_hole_and_nothing_is_lost() -> None:
    clock = Clock()
    rec = Recorder()
    asm = assembler(rec, clock)
    frames = stream([KEY, DELTA, DELTA])
    late = frames[1][0]
    for frame in frames:
        for packet in frame:
            if packet is not late:
                asm.add(packet)
                clock.now += 0.05
    asm.add(late)
    assert [f[0] for f in rec.frames] == [KEY, DELTA, DELTA]
    assert rec.keyframe_requests == 0


def test_duplicates_and_late_packets_are_ignored() -> None:
    rec = Recorder()
    asm = assembler(rec)
    frames = stream([KEY, DELTA])
    for packet in frames[0] + frames[0] + frames[1] + frames[0][:1]:
        asm.add(packet)
    assert [f[0] for f in rec.frames] == [KEY, DELTA]


def test_sequence_numbers_wrap_around() -> None:
    rec = Recorder()
    asm = assembler(rec)
    for frame in stream([KEY, DELTA, DELTA], start_seq=65533):
        for packet in frame:
            asm.add(packet)
    assert len(rec.frames) == 3


@given(st.lists(st.integers(min_value=0, max_value=2**16 - 1), min_size=1, max_size=50))
def test_unwrapper_is_monotonic_for_small_forward_steps(steps: list[int]) -> None:
    unwrapper = Unwrapper(16)
    value = 60000
    last = unwrapper.unwrap(value)
    for step in steps:
        value = (value + step % 1000) % 65536
        extended = unwrapper.unwrap(value)
        assert extended >= last and extended % 65536 == value
        last = extended


def test_audio_packets_are_forwarded_at_once_and_late_ones_dropped() -> None:
    got: list[int] = []
    asm = AudioAssembler({111: "OPUS"}, lambda codec, data, ts, key: got.append(ts))
    for seq, ts in ((10, 0), (12, 1920), (11, 960), (13, 2880)):
        packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=ts)
        packet._data = b"opus"  # type: ignore[attr-defined]
        asm.add(packet)
    assert got == [0, 1920, 2880]
