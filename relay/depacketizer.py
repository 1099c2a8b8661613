"""Reassembling a publisher's RTP packets into whole encoded frames, in place of aiortc's jitter buffer.

aiortc's ``JitterBuffer`` releases a video frame only when the next frame's first packet arrives (one
frame interval, ~33 ms, of added latency), holds audio for 4 packets (~80 ms), and on an unrecovered
loss stalls until it overflows (~4 s), then hands on frames that depend on what was lost. A relay
wants the opposite: release a frame the moment its last packet (RTP marker) is in, wait a bounded
time for a retransmission (aiortc's receiver still NACKs, and unwraps RTX before we see the packet),
and after a loss forward nothing until a keyframe, which it asks for.

These assemblers sit in the receiver's jitter-buffer slot (see ``relay.aiortc_hooks``) and deliver
frames through a callback, so nothing reaches aiortc's decoder queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiortc.rtp import RtpPacket

from relay.aiortc_hooks import depayloaded
from relay.keyframes import is_keyframe

logger = logging.getLogger(__name__)

#: Called with (codec name, frame bytes, unwrapped RTP timestamp, is keyframe).
FrameCallback = Callable[[str, bytes, int, bool], None]

_NOTHING: tuple[bool, None] = (False, None)


class Unwrapper:
    """Extends a wrapping RTP counter (16-bit sequence number, 32-bit timestamp) to an int."""

    def __init__(self, bits: int) -> None:
        self._modulus = 1 << bits
        self._half = 1 << (bits - 1)
        self._last: int | None = None

    def unwrap(self, value: int) -> int:
        if self._last is None:
            extended = value
        else:
            delta = (value - self._last) % self._modulus
            if delta >= self._half:
                delta -= self._modulus
            extended = self._last + delta
        if self._last is None or extended > self._last:
            self._last = extended
        return extended


class AudioAssembler:
    """Audio frames are single packets: forward each at once, in order, dropping late ones."""

    def __init__(self, codecs: dict[int, str], on_frame: FrameCallback) -> None:
        self._codecs = codecs
        self._on_frame = on_frame
        self._seq = Unwrapper(16)
        self._timestamp = Unwrapper(32)
        self._last_seq: int | None = None
        self.media_ssrc: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self.media_ssrc = packet.ssrc
        seq = self._seq.unwrap(packet.sequence_number)
        if self._last_seq is not None and seq <= self._last_seq:
            return _NOTHING
        self._last_seq = seq
        data = depayloaded(packet)
        if data:
            codec = self._codecs.get(packet.payload_type, "")
            self._on_frame(codec, data, self._timestamp.unwrap(packet.timestamp), True)
        return _NOTHING


class VideoAssembler:
    """Video frames span packets: release each when complete; after a loss, wait for a keyframe.

    :param codecs: payload type -> codec name, from the publisher's offer.
    :param on_frame: receives each complete, decodable-in-order frame.
    :param on_keyframe_needed: called while the assembler is waiting for a keyframe.
    :param max_wait: how long a hole may wait for its retransmission before it is declared lost.
    """

    def __init__(
        self,
        codecs: dict[int, str],
        on_frame: FrameCallback,
        on_keyframe_needed: Callable[[], None],
        *,
        max_wait: float = 0.35,
        max_packets: int = 2048,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._codecs = codecs
        self._on_frame = on_frame
        self._on_keyframe_needed = on_keyframe_needed
        self._max_wait = max_wait
        self._max_packets = max_packets
        self._clock = clock
        self._seq = Unwrapper(16)
        self._timestamp = Unwrapper(32)
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None  # first sequence number of the next frame; None: resyncing
        self._highest: int | None = None
        self._hole_since: float | None = None
        self._need_keyframe = True
        self.media_ssrc: int | None = None
        self.frames_dropped = 0
        self.losses = 0

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self.media_ssrc = packet.ssrc
        seq = self._seq.unwrap(packet.sequence_number)
        if (self._next is not None and seq < self._next) or seq in self._packets:
            return _NOTHING  # late or duplicate
        self._packets[seq] = packet
        if self._highest is None or seq > self._highest:
            self._highest = seq
        if self._next is None:
            self._resync()
        self._drain()
        self._check_hole()
        return _NOTHING

    def _drain(self) -> None:
        while self._next is not None:
            end = self._frame_end(self._next)
            if end is None:
                return
            packets = [self._packets.pop(s) for s in range(self._next, end + 1)]
            self._next = end + 1
            first = packets[0]
            codec = self._codecs.get(first.payload_type, "")
            data = b"".join(depayloaded(p) for p in packets)
            key = is_keyframe(codec, data)
            if self._need_keyframe and not key:
                self.frames_dropped += 1
                self._on_keyframe_needed()
                continue
            self._need_keyframe = False
            self._on_frame(codec, data, self._timestamp.unwrap(first.timestamp), key)

    def _frame_end(self, start: int) -> int | None:
        """The last sequence number of the frame starting at ``start``, if all of it is here."""
        first = self._packets.get(start)
        if first is None:
            return None
        seq = start
        while True:
            packet = self._packets.get(seq)
            if packet is None:
                return None
            if packet.timestamp != first.timestamp:
                return seq - 1  # the frame ended without a marker bit
            if packet.marker:
                return seq
            seq += 1

    def _check_hole(self) -> None:
        if self._next is None or self._highest is None or not self._packets:
            self._hole_since = None
            return
        span = self._highest - self._next + 1
        if len(self._packets) >= span:
            self._hole_since = None  # everything up to the highest packet is here
            return
        now = self._clock()
        if self._hole_since is None:
            self._hole_since = now
        if now - self._hole_since >= self._max_wait or len(self._packets) > self._max_packets:
            self._declare_loss()

    def _declare_loss(self) -> None:
        assert self._next is not None
        missing = self._next
        while missing in self._packets:
            missing += 1
        self.losses += 1
        logger.debug("video packet %d lost; waiting for a keyframe", missing)
        self._hole_since = None
        self._next = None
        self._need_keyframe = True
        self._on_keyframe_needed()
        # What follows the hole is useful from the first frame boundary after it.
        self._resync(after=missing + 1)
        self._drain()

    def _resync(self, after: int | None = None) -> None:
        """Find a packet known to start a frame and continue from there."""
        for seq in sorted(self._packets):
            if after is not None and seq < after:
                continue
            if self._starts_frame(seq):
                for old in [s for s in self._packets if s < seq]:
                    del self._packets[old]
                self._next = seq
                return
        if after is not None:
            for old in [s for s in self._packets if s < after]:
                del self._packets[old]
        if len(self._packets) > self._max_packets:
            self._packets.clear()

    def _starts_frame(self, seq: int) -> bool:
        packet = self._packets[seq]
        previous = self._packets.get(seq - 1)
        if previous is not None and (previous.marker or previous.timestamp != packet.timestamp):
            return True
        codec = self._codecs.get(packet.payload_type, "").upper()
        payload = packet.payload
        if codec == "VP8" and payload:
            # RFC 7741 payload descriptor: S bit set and partition index 0.
            return payload[0] & 0x10 != 0 and payload[0] & 0x07 == 0
        if codec == "H264" and payload:
            nal_type = payload[0] & 0x1F
            # STAP-A (SPS+PPS), SPS or an access unit delimiter open an access unit in practice.
            return nal_type in (24, 7, 9)
        return False
