"""Writing one subscriber's RTP straight to its socket while the source fans a frame out.

aiortc's sender pulls frames from its track in a task of its own and sends each packet through
four awaited layers. For a relay with hundreds of subscribers that is a task wake-up per frame per
subscriber and most of the CPU spent per viewer. An :class:`Outlet` is pushed to instead: the
source's fan-out loop calls :meth:`Outlet.send` for every subscriber in turn, which builds the RTP
headers (per subscriber: SSRC, sequence numbers, timestamp origin), SRTP-protects each packet and
hands it to the datagram transport, with no await and no task in between.

What is shared across subscribers is computed once per frame: the payloads (the source's
:class:`~relay.packetizer.PayloadCache`), the send time, and the header extension block of each
distinct negotiation (:class:`FrameStamp`).
"""

from __future__ import annotations

import asyncio
import random
import struct

import av

from relay.aiortc_hooks import DirectPath, Packer, current_ntp_time

#: The first 4 bytes of an RTP header (V/P/X/CC, M/PT, sequence number), then timestamp and SSRC.
_HEAD = struct.Struct("!BBH")
_TS_SSRC = struct.Struct("!II")


class FrameStamp:
    """The send time of the frame being fanned out, and its header extension blocks by negotiation.

    All subscribers of a frame are served in one synchronous loop, so one stamp (keyed by the
    frame's packet object) serves them all; the next frame replaces it.
    """

    __slots__ = ("abs_send_time", "blocks", "ntp_time", "packet")

    def __init__(self) -> None:
        self.packet: av.Packet | None = None
        self.ntp_time = 0
        self.abs_send_time = 0
        self.blocks: dict[tuple[object, ...], bytes] = {}

    def renew(self, packet: av.Packet) -> None:
        self.packet = packet
        self.ntp_time = current_ntp_time()
        self.abs_send_time = (self.ntp_time >> 14) & 0x00FFFFFF
        self.blocks = {}


_stamp = FrameStamp()


class Outlet:
    """One subscriber sender's direct path, fed frame by frame by its :class:`SubscriberTrack`.

    :param path: the sender's SRTP session, socket and RTCP bookkeeping (from aiortc_hooks).
    :param packer: turns the shared ``av.Packet`` into RTP payloads (and counts what is forwarded).
    """

    def __init__(self, path: DirectPath, packer: Packer) -> None:
        self._path = path
        self._packer = packer
        self._payload_type = path.payload_type
        self._ssrc = path.ssrc
        self._sequence = random.randrange(0, 1 << 16)
        self._origin = random.randrange(0, 1 << 32)
        self._history_size = path.history_size
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def close(self) -> None:
        """Stop sending; the sender's run loop ends and aiortc tears the sender down."""
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, packet: av.Packet) -> bool:
        """Send one frame now; False if it was dropped because the subscriber's socket is backed up."""
        path = self._path
        if self.closed.done() or not path.usable():
            self.close()
            return True
        payloads, pts = self._packer.pack(packet)
        if not payloads:
            return True
        stamp = _stamp
        if stamp.packet is not packet:
            stamp.renew(packet)
        key = path.extensions_key
        block = stamp.blocks.get(key)
        if block is None:
            block = stamp.blocks[key] = path.extension_block(stamp.abs_send_time)
        timestamp = (self._origin + pts) & 0xFFFFFFFF
        tail = _TS_SSRC.pack(timestamp, self._ssrc) + block
        first = 0x90 if block else 0x80
        payload_type = self._payload_type
        sequence = self._sequence
        history, size = path.history, self._history_size
        last = len(payloads) - 1
        packets: list[bytes] = []
        octets = 0
        for i, payload in enumerate(payloads):
            data = _HEAD.pack(first, payload_type | 0x80 if i == last else payload_type, sequence) + tail + payload
            history[sequence % size] = data
            packets.append(data)
            octets += len(payload)
            sequence = (sequence + 1) & 0xFFFF
        self._sequence = sequence
        path.account(len(packets), octets, octets + len(packets) * (len(tail) + 4), stamp.ntp_time, timestamp)
        return path.write(packets)
