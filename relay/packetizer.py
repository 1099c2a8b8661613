"""Packing encoded frames into RTP payloads for subscribers' senders: the relay's 'encoder'.

aiortc's sender asks its encoder to ``pack()`` anything a track returns that is not a raw frame.
Its own encoders would do, but building them is not free (the Opus one opens a libopus encoder),
so each subscriber sender gets a :class:`Packetizer` instead: no codec context, just payloading.

Every subscriber of a source sends the same frames, so the payloads of a frame are built once, by
the first subscriber's packetizer, and shared through the source's :class:`PayloadCache`. The VP8
picture id is numbered per source rather than per subscriber: a subscriber that skipped frames
(joined late, or recovered from an overflow) sees a gap before a keyframe, which RFC 7741 allows.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
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


class PayloadCache:
    """The RTP payloads of a source's recent frames, built once and shared by its subscribers.

    :param size: frames remembered (more than a subscriber queue holds).
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._entries: OrderedDict[int, tuple[av.Packet, list[bytes]]] = OrderedDict()
        self._picture_id = random.randint(0, (1 << 15) - 1)

    def payloads(self, codec: str, packet: av.Packet) -> list[bytes]:
        key = id(packet)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is packet:  # the packet is kept alive: ids are not reused
            return entry[1]
        payloads = self._packetize(codec, bytes(packet))
        self._entries[key] = (packet, payloads)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return payloads

    def _packetize(self, codec: str, data: bytes) -> list[bytes]:
        if codec == "VP8":
            payloads = vp8_payloads(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
            return payloads
        if codec == "H264":
            return h264_payloads(data)
        return [data]


class Packetizer:
    """Turns the shared ``av.Packet`` of each frame into RTP payloads for one subscriber's sender.

    :param codec: the codec negotiated with the subscriber ("VP8", "H264", "OPUS").
    :param counters: where to count forwarded frames, packets and payload bytes.
    :param cache: returns the cache of the source currently feeding the subscriber, if any.
    """

    def __init__(
        self, codec: str, counters: ForwardCounters, cache: Callable[[], PayloadCache | None] = lambda: None
    ) -> None:
        self.codec = codec.upper()
        self.counters = counters
        self._cache = cache
        self._own = PayloadCache(size=1)

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        cache = self._cache() or self._own
        payloads = cache.payloads(self.codec, packet)
        counters = self.counters
        counters.frames += 1
        counters.packets += len(payloads)
        counters.bytes += packet.size
        # The packet's time base is the codec's RTP clock, so pts is already an RTP timestamp.
        return payloads, packet.pts or 0
