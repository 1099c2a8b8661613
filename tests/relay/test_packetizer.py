"""Payloads of a frame are built once per source and shared by every subscriber's packetizer."""

from __future__ import annotations

import av

from relay.aiortc_hooks import vp8_payloads
from relay.packetizer import ForwardCounters, Packetizer, PayloadCache


def frame(size: int, pts: int) -> av.Packet:
    packet = av.Packet(bytes(range(256)) * (size // 256))
    packet.pts = pts
    return packet


def test_subscribers_of_one_source_share_the_payloads_of_each_frame() -> None:
    cache = PayloadCache()
    counters = ForwardCounters()
    packetizers = [Packetizer("VP8", counters, lambda: cache) for _ in range(3)]
    packet = frame(3584, 3000)
    results = [p.pack(packet) for p in packetizers]
    assert all(r[0] is results[0][0] for r in results), "one list of payloads, built once"
    assert all(r[1] == 3000 for r in results)
    assert b"".join(payload[4:] for payload in results[0][0]) == bytes(packet)  # 4-byte descriptors
    assert (counters.frames, counters.packets, counters.bytes) == (3, 3 * len(results[0][0]), 3 * 3584)


def test_vp8_picture_ids_increase_per_frame_of_the_source() -> None:
    cache = PayloadCache()
    first = cache.payloads("VP8", frame(512, 0))[0]
    second = cache.payloads("VP8", frame(512, 3000))[0]
    picture_id = lambda payload: int.from_bytes(payload[2:4], "big") & 0x7FFF  # noqa: E731
    assert picture_id(second) == (picture_id(first) + 1) % (1 << 15)
    assert first == vp8_payloads(bytes(frame(512, 0)), picture_id(first))[0]


def test_opus_frames_are_sent_as_they_are() -> None:
    packet = frame(256, 960)
    payloads, timestamp = Packetizer("opus", ForwardCounters()).pack(packet)
    assert payloads == [bytes(packet)] and timestamp == 960
