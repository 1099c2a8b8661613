"""The relay's CPU per publisher packet received, SRTP in to whole frames out, against aiortc's own handlers.

A publisher's 150 packets a second are the part of the relay's cost that does not shrink per viewer, and the
part that a whole-server benchmark (``bench/vs_janus.py``) measures worst: a change of 10 us per packet is
0.15% of a core, under the noise of a machine running hundreds of viewers. Here one process connects two aiortc
peers over loopback, stops the sender's own media, and hands the receiver's ICE connection SRTP datagrams made
with the sender's keys (640x480-sized VP8 frames of 4 packets, header extensions as aiortc's sender writes
them), as the socket's reader would, timing the CPU they cost. The receiver is the relay's: its frames go to a
``VideoAssembler`` (``relay.aiortc_hooks.take_encoded_frames``) and its SRTP is handled as it arrives
(``receive_inline``). Two paths take turns in batches over the same stream:

- ``relay``: what ``receive_inline`` does (``_receive_rtp``: aiortc's receive steps as plain calls);
- ``aiortc``: the same unprotect, then aiortc 1.16's ``RTCDtlsTransport._handle_rtp_data`` coroutine (and
  ``RTCRtpReceiver._handle_rtp_packet``'s) driven by ``run_eagerly``, as before ``_receive_rtp``.

It prints each path's median microseconds per packet over the batches, and the ratio. The sender's SRTP
session and the two handlers are reached through aiortc's private names; a benchmark may, the relay may not
(relay/aiortc_hooks.py).

    python bench/ingest.py --packets 20000 --batches 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiortc import RTCConfiguration, RTCPeerConnection, clock  # noqa: E402
from aiortc.mediastreams import MediaStreamTrack  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from relay import aiortc_hooks  # noqa: E402
from relay.depacketizer import VideoAssembler  # noqa: E402

FRAME_BYTES = 4200  # ~1 Mbps at 30 fps
PACKETS_PER_FRAME = 4


class Silent(MediaStreamTrack):
    """A video track that never yields a frame: the sender connects but sends no media of its own."""

    kind = "video"

    async def recv(self) -> Any:
        await asyncio.Event().wait()


def frames(count: int) -> list[bytes]:
    """VP8-shaped frames: a keyframe (P bit 0, start code), then inter frames."""
    body = bytes(range(256)) * (FRAME_BYTES // 256 + 1)
    key = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]) + body[: FRAME_BYTES - 6]
    inter = bytes([0x31, 0x02, 0x00]) + body[: FRAME_BYTES - 3]
    return [key] + [inter] * (count - 1)


async def main(args: argparse.Namespace) -> None:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender = sender_pc.addTrack(Silent())
    delivered = [0]

    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in receiver_pc.getTransceivers() if t.receiver.track is track)
        codecs = {c.payloadType: c.name for c in receiver_pc.getTransceivers()[0]._codecs}
        assembler = VideoAssembler(codecs, lambda *_: delivered.__setitem__(0, delivered[0] + 1), lambda: None)
        aiortc_hooks.take_encoded_frames(receiver, assembler)

    receiver_pc.on("track", on_track)
    await sender_pc.setLocalDescription(await sender_pc.createOffer())
    await receiver_pc.setRemoteDescription(sender_pc.localDescription)
    await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
    aiortc_hooks.receive_inline(receiver_pc)
    await sender_pc.setRemoteDescription(receiver_pc.localDescription)
    while receiver_pc.connectionState != "connected" or sender.transport._tx_srtp is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the receiver's track event, then its receive()

    [connection] = aiortc_hooks.ice_connections(receiver_pc)
    dtls: Any = receiver_pc.getTransceivers()[0].receiver.transport
    tx_srtp = sender.transport._tx_srtp
    extensions_map = sender._RTCRtpSender__rtp_header_extensions_map
    payload_type = sender_pc.getTransceivers()[0]._codecs[0].payloadType
    payloads = [p for frame in frames(64) for p in aiortc_hooks.vp8_payloads(frame, 0)]
    state = {"seq": 1000, "ts": 0, "i": 0}

    def batch(count: int) -> list[bytes]:
        out = []
        for _ in range(count):
            i = state["i"]
            payload = payloads[i % len(payloads)]
            packet = RtpPacket(payload_type=payload_type, sequence_number=state["seq"] & 0xFFFF,
                               timestamp=state["ts"] & 0xFFFFFFFF, ssrc=sender._ssrc,
                               marker=int(i % PACKETS_PER_FRAME == PACKETS_PER_FRAME - 1), payload=payload)
            packet.extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
            packet.extensions.mid = sender_pc.getTransceivers()[0].mid
            out.append(tx_srtp.protect(packet.serialize(extensions_map)))
            state["seq"] += 1
            state["i"] += 1
            if i % PACKETS_PER_FRAME == PACKETS_PER_FRAME - 1:
                state["ts"] += 3000
        return out

    hooked = connection.data_received  # receive_inline's handler

    def aiortcs(data: bytes, component: int) -> None:
        aiortc_hooks.run_eagerly(dtls._handle_rtp_data(dtls._rx_srtp.unprotect(data),
                                                       arrival_time_ms=clock.current_ms()))

    paths = {"relay": hooked, "aiortc": aiortcs}
    per_packet: dict[str, list[float]] = {name: [] for name in paths}
    size = args.packets // args.batches
    for _ in range(args.batches):
        for name, handle in paths.items():
            datagrams = batch(size)
            before_frames = delivered[0]
            started = time.process_time()
            for datagram in datagrams:
                handle(datagram, 1)
            per_packet[name].append((time.process_time() - started) / size * 1e6)
            assert delivered[0] - before_frames >= size // PACKETS_PER_FRAME - 2, f"{name}: frames were lost"
            await asyncio.sleep(0)  # tasks the handlers started (none expected) and RTCP run between batches
    relay_us = statistics.median(per_packet["relay"])
    aiortc_us = statistics.median(per_packet["aiortc"])
    print(f"# {args.packets} packets in {args.batches} batches per path, VP8 {FRAME_BYTES} B frames in "
          f"{PACKETS_PER_FRAME} packets; {delivered[0]} frames delivered")
    for name in paths:
        values = ", ".join(f"{v:.1f}" for v in per_packet[name])
        print(f"{name:<7} {statistics.median(per_packet[name]):6.1f} us per packet (batches: {values})")
    print(f"relay / aiortc = {relay_us / aiortc_us:.2f}x")
    await sender_pc.close()
    await receiver_pc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=20000, help="packets per path")
    parser.add_argument("--batches", type=int, default=10, help="turns each path takes")
    asyncio.run(main(parser.parse_args()))
