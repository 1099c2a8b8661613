"""The direct send path: what reaches a subscriber on the wire is well-formed RTP, and NACKs work."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from relay import Relay, aiortc_hooks
from relay.aiortc_hooks import SrtpWire, segment_runs
from tests.relay.endpoints import Endpoint


def test_segment_runs_group_equal_packets_with_a_shorter_last_one() -> None:
    assert segment_runs([(0, 100), (100, 100), (200, 100), (300, 50)], True) == [(0, 350, 100)]
    assert segment_runs([(0, 100), (100, 100), (200, 120), (320, 50), (370, 50)], True) == [
        (0, 200, 100), (200, 170, 120), (370, 50, 50)]
    assert segment_runs([(0, 100), (100, 100)], False) == [(0, 100, 100), (100, 100, 100)]
    assert segment_runs([(0, 100)], True) == [(0, 100, 100)]
    many = [(i * 1000, 1000) for i in range(100)]
    runs = segment_runs(many, True)
    assert all(total <= 65000 and total // segment <= 64 for _, total, segment in runs)
    assert sum(total for _, total, _ in runs) == 100_000


def rtp(sequence: int, payload: bytes, marker: int = 0) -> bytes:
    packet = RtpPacket(payload_type=97, marker=marker, sequence_number=sequence, timestamp=1234, ssrc=0x1020304)
    packet.payload = payload
    return packet.serialize()


async def send_through_wire(key: bytes, packets: list[bytes], gso: bool) -> list[bytes]:
    """Write ``packets`` with an SrtpWire keyed ``key`` (GSO allowed or not); the datagrams received."""
    loop = asyncio.get_running_loop()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    udp = transport.get_extra_info("socket")
    wire = SrtpWire(Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)), udp.fileno(), sink.getsockname())
    saved = aiortc_hooks._gso[0]
    aiortc_hooks._gso[0] = gso and saved
    try:
        sent, protected = wire.write(packets)
        assert sent
        datagrams: list[bytes] = []
        while len(datagrams) < len(packets):
            datagrams.append(await asyncio.wait_for(loop.sock_recv(sink, 2048), 5))
        assert protected == sum(len(d) for d in datagrams)
        return datagrams
    finally:
        aiortc_hooks._gso[0] = saved
        wire.close()
        transport.close()
        sink.close()


async def test_srtp_wire_sends_a_frame_as_separate_srtp_datagrams_with_and_without_gso() -> None:
    key = os.urandom(30)
    frame = [rtp(65534 + i & 0xFFFF, bytes([i]) * 1100, marker=i == 4) for i in range(4)]
    frame.append(rtp(2, b"\x05" * 300, marker=1))
    received = {gso: await send_through_wire(key, frame, gso) for gso in (True, False)}
    assert received[True] == received[False], "GSO splits a frame into exactly the datagrams sent one by one"
    inbound = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    assert [inbound.unprotect(d) for d in received[True]] == frame


class Recorder:
    """Stands in for the receiver's jitter buffer: keeps every RTP packet that arrives."""

    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []
        self.changed = asyncio.Event()

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self.packets.append(packet)
        self.changed.set()
        return False, None

    async def wait(self, predicate: Callable[[list[RtpPacket]], bool], timeout: float = 10) -> None:
        async def reached() -> None:
            while not predicate(self.packets):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(reached(), timeout)


@pytest.mark.parametrize("relay", ["direct", "python", "queued"], indirect=True)
async def test_subscribers_get_consecutive_rtp_with_extensions_and_nacked_packets_again(
    relay: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    publisher = endpoints("publisher", send=("video",), receive=(), data_channel=False)
    await publisher.accept(await relay.publish_stream("s", publisher.name, await publisher.offer()))
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer.addTransceiver("video", direction="recvonly")
    recorder = Recorder()
    receivers: list[RTCRtpReceiver] = []

    @viewer.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in viewer.getTransceivers() if t.receiver.track is track)
        aiortc_hooks.take_encoded_frames(receiver, recorder)
        receivers.append(receiver)

    try:
        await viewer.setLocalDescription(await viewer.createOffer())
        answer = await relay.watch_stream("s", "viewer", viewer.localDescription.sdp)
        await viewer.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await recorder.wait(lambda packets: sum(p.marker for p in packets) >= 10)
        assert relay.subscriber_tracks("viewer")["video"].direct == (relay._direct_send)
        if relay._direct_send:
            source = relay.sources("s")[0]
            assert source.grouped == 1, "a subscriber in step is served by the batched fan-out"
        packets = list(recorder.packets)
        assert len({p.ssrc for p in packets}) == 1
        for before, after in itertools.pairwise(packets):
            assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
            if not before.marker:
                assert after.timestamp == before.timestamp, "a frame's packets share its timestamp"
        mid = viewer.getTransceivers()[0].mid
        assert all(p.extensions.mid == mid and p.extensions.abs_send_time is not None for p in packets)

        # aiortc's stats (and SRs) count what the direct path sent.
        [outbound] = [s for s in (await viewer_sender_stats(relay)).values() if s.type == "outbound-rtp"]
        assert outbound.packetsSent >= len(packets) and outbound.bytesSent > 0

        # A NACK for a packet already received brings the very same packet again (over RTX).
        wanted = packets[-3]
        await receivers[0]._send_rtcp_nack(wanted.ssrc, [wanted.sequence_number])  # type: ignore[attr-defined]

        def resent(now: list[RtpPacket]) -> bool:
            return sum(p.sequence_number == wanted.sequence_number for p in now) >= 2

        await recorder.wait(resent)
        again = [p for p in recorder.packets if p.sequence_number == wanted.sequence_number][-1]
        assert (again.payload, again.marker, again.timestamp) == (wanted.payload, wanted.marker, wanted.timestamp)
    finally:
        await viewer.close()


async def viewer_sender_stats(relay: Relay) -> Any:
    participant = relay._participants["viewer"]
    assert participant.peer is not None
    [sender] = [t.sender for t in participant.peer.pc.getTransceivers() if t.kind == "video"]
    return await sender.getStats()


async def test_srtp_wire_sends_a_single_packet_as_one_srtp_datagram() -> None:
    key = os.urandom(30)
    packet = rtp(7, b"opus" * 40, marker=1)
    [datagram] = await send_through_wire(key, [packet], True)
    assert Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND)).unprotect(datagram) == packet


async def test_audio_subscribers_get_sender_reports_at_the_audio_interval_with_what_the_direct_path_sent(
    relay: Relay, endpoints: Callable[..., Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("relay.peer.AUDIO_SR_INTERVAL", 0.2)  # libwebrtc's 5 s, shortened for the test
    publisher = endpoints("publisher", send=("audio",), receive=(), data_channel=False)
    await publisher.accept(await relay.publish_stream("s", publisher.name, await publisher.offer()))
    viewer = endpoints("viewer", send=(), receive=("audio",), data_channel=False)
    await viewer.accept(await relay.watch_stream("s", viewer.name, await viewer.offer()))
    await viewer.wait_decoded("audio", 20)

    async def reported(packets: int) -> Any:
        while True:
            for stats in (await viewer.pc.getStats()).values():
                if stats.type == "remote-outbound-rtp" and stats.packetsSent >= packets:
                    return stats
            await asyncio.sleep(0.1)

    # SRs come every ~0.2 s here and count what the direct path has sent by then (20 decoded: >= 20 sent).
    stats = await asyncio.wait_for(reported(20), 5)
    assert stats.bytesSent >= 20, "the SR counts the direct path's octets too"


async def test_video_subscribers_get_sender_reports_from_the_writer_and_the_relay_measures_their_round_trip(
    relay: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    publisher = endpoints("publisher", send=("video",), receive=(), data_channel=False)
    await publisher.accept(await relay.publish_stream("s", publisher.name, await publisher.offer()))
    viewer = endpoints("viewer", send=(), receive=("video",), data_channel=False)
    await viewer.accept(await relay.watch_stream("s", viewer.name, await viewer.offer()))
    await viewer.wait_decoded("video", 5)
    sender = subscriber_sender(relay, "viewer", "video")
    assert sender.__dict__.get("_relay_reports"), "the writer sends the reports, aiortc's loop only waits"

    async def both() -> tuple[Any, Any]:
        while True:
            remote = [s for s in (await viewer.pc.getStats()).values() if s.type == "remote-outbound-rtp"]
            measured = [s for s in (await sender.getStats()).values()
                        if s.type == "remote-inbound-rtp" and s.roundTripTime is not None]
            if remote and remote[0].packetsSent and measured:
                return remote[0], measured[0]
            await asyncio.sleep(0.1)

    # The viewer's receiver reports answer the writer's SRs (LSR/DLSR): the relay's sender can only measure
    # the round trip from them if it reads the LSR and the time it went out from the writer.
    remote, measured = await asyncio.wait_for(both(), 10)
    assert remote.bytesSent > 0
    assert 0 <= measured.roundTripTime < 1.0


def subscriber_sender(relay: Relay, participant: str, kind: str) -> Any:
    peer = relay._participants[participant].peer
    assert peer is not None
    [sender] = [t.sender for t in peer.pc.getTransceivers() if t.kind == kind]
    return sender
