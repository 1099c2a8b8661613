"""Writing one subscriber's RTP straight to its socket while the source fans a frame out.

aiortc's sender pulls frames from its track in a task of its own and sends each packet through
four awaited layers. For a relay with hundreds of subscribers that is a task wake-up per frame per
subscriber and most of the CPU spent per viewer. An :class:`Outlet` is pushed to instead: the
source's fan-out hands each frame to the outlet's *writer* (``relay.wire``), which builds the RTP
headers (per subscriber: SSRC, sequence numbers, timestamp origin), SRTP-protects each packet and
writes it to the socket, with no await and no task in between. A subscriber in step with its
source (its video not waiting for a keyframe) is served by the source's batched fan-out
(:meth:`relay.forwarder.Source`: one call writes a frame to every such writer); the outlet's own
:meth:`Outlet.send` serves the frames in between (the first keyframe, the queued frames).

What is shared across subscribers is computed once per frame: the payloads (the source's
:class:`~relay.packetizer.PayloadCache`) and the send time (:func:`frame_time`).
"""

from __future__ import annotations

import asyncio
import random

import av

from relay.aiortc_hooks import DirectPath, current_ntp_time
from relay.packetizer import ForwardCounters, Packetizer
from relay.wire import FrameWriter, WireKind

_stamp: list[object] = [None, 0]  # the frame last stamped, and its NTP send time


def frame_time(packet: av.Packet) -> int:
    """The NTP send time of the frame being fanned out (one per frame, shared by its subscribers)."""
    if _stamp[0] is not packet:
        _stamp[0] = packet
        _stamp[1] = current_ntp_time()
    ntp: int = _stamp[1]  # type: ignore[assignment]
    return ntp


class Outlet:
    """One subscriber sender's direct path, fed frame by frame by its :class:`SubscriberTrack`.

    :param path: the sender's SRTP session, socket and RTCP bookkeeping (from aiortc_hooks).
    :param packer: turns the shared ``av.Packet`` into RTP payloads (and counts what is forwarded).
    :param wire: which writer implementation to use (compiled or Python).
    """

    def __init__(self, path: DirectPath, packer: Packetizer, wire: WireKind) -> None:
        self._path = path
        self._packer = packer
        self.wire = wire
        self.codec = packer.codec
        self.counters: ForwardCounters = packer.counters
        self.writer: FrameWriter = path.open_writer(
            wire.writer, random.randrange(0, 1 << 16), random.randrange(0, 1 << 32))
        self.writer.owner = self
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def close(self) -> None:
        """Stop sending; the sender's run loop ends and aiortc tears the sender down."""
        self.writer.close()
        if not self.closed.done():
            self.closed.set_result(None)

    def usable(self) -> bool:
        """Whether frames can still go out (not closed, DTLS up, sender enabled, socket open)."""
        return not self.closed.done() and self._path.usable()

    def send(self, packet: av.Packet) -> bool:
        """Send one frame now; False if it was dropped because the subscriber's socket is backed up."""
        if not self.usable():
            self.close()
            return True
        payloads, pts = self._packer.pack(packet)
        if not payloads:
            return True
        return self.writer.send(payloads, pts, frame_time(packet))
