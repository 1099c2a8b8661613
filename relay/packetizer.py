"""Packing encoded frames into RTP payloads for one subscriber's sender: the relay's 'encoder'.

aiortc's sender asks its encoder to ``pack()`` anything a track returns that is not a raw frame.
Its own encoders would do, but building them is not free (the Opus one opens a libopus encoder),
so each subscriber sender gets a :class:`Packetizer` instead: no codec context, just payloading.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import av

from relay.aiortc_hooks import h264_payloads, vp8_payloads


@dataclass
class ForwardCounters:
    """Hot-path counters of what went out, read by the metrics collector at scrape time.

    Plain integers, not Prometheus counters: they are bumped for every frame of every subscriber.
    """

    frames: int = 0
    packets: int = 0
    bytes: int = 0


class Packetizer:
    """Turns the shared ``av.Packet`` of each frame into this subscriber's RTP payloads.

    :param codec: the codec negotiated with the subscriber ("VP8", "H264", "opus").
    :param counters: where to count forwarded frames, packets and payload bytes.
    """

    def __init__(self, codec: str, counters: ForwardCounters) -> None:
        self.codec = codec
        self._name = codec.upper()
        self._counters = counters
        # VP8 picture ids are per RTP stream: each subscriber's sender numbers its own.
        self._picture_id = random.randint(0, (1 << 15) - 1)

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        data = bytes(packet)
        if self._name == "VP8":
            payloads = vp8_payloads(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        elif self._name == "H264":
            payloads = h264_payloads(data)
        else:
            payloads = [data]
        counters = self._counters
        counters.frames += 1
        counters.packets += len(payloads)
        counters.bytes += len(data)
        # The packet's time base is the codec's RTP clock, so pts is already an RTP timestamp.
        pts = packet.pts or 0
        return payloads, pts
