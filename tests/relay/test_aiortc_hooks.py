"""The aiortc/aioice internals the relay hooks are still where relay/aiortc_hooks.py expects them.

If one of these fails after an upgrade, do not just update a fingerprint: read the new source of
the method named in the failure, check each assumption listed in relay/aiortc_hooks.py's docstring
still holds, adapt the hook, then record the new fingerprint.
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import inspect
import logging
import socket
import threading
from asyncio.selector_events import _SelectorDatagramTransport  # type: ignore[attr-defined]
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import aioice
import aiortc.clock
import aiortc.rtcrtpsender
import av
import pylibsrtp
import pytest
from aioice import Connection
from aioice.ice import StunProtocol
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtcrtpsender import RTCEncodedFrame
from aiortc.rtp import RTCP_PSFB_APP, HeaderExtensionsMap, RtcpPsfbPacket, is_rtcp, unpack_remb_fci

from relay import aiortc_hooks
from relay.depacketizer import VideoAssembler
from relay.packetizer import ForwardCounters, Packetizer
from tests.relay.endpoints import PatternVideoTrack

FINGERPRINTS = {
    "RTCRtpReceiver.__init__": (RTCRtpReceiver.__init__, "3e3b7b5cefbaac6f"),
    "RTCRtpReceiver.receive": (RTCRtpReceiver.receive, "d6d8d8d7a0bf4e95"),
    "RTCRtpReceiver._handle_rtp_packet": (RTCRtpReceiver._handle_rtp_packet, "4e54983d021a6336"),
    "RTCRtpReceiver._send_rtcp_pli": (RTCRtpReceiver._send_rtcp_pli, "ae74c43d50f6eb7b"),
    "RTCRtpReceiver._send_rtcp": (RTCRtpReceiver._send_rtcp, "9f0bc9f6a8ddb289"),
    "RTCRtpReceiver.stop": (RTCRtpReceiver.stop, "63734b6894ce67a5"),
    "RTCRtpSender._next_encoded_frame": (RTCRtpSender._next_encoded_frame, "89dd9fa4fb33741c"),
    "RTCRtpSender._handle_rtcp_packet": (RTCRtpSender._handle_rtcp_packet, "a4ee4c7355f8de7a"),
    # Receiver reports read where _handle_rtcp_packet keeps them (reported_reception), as getStats returns them.
    "RTCRtpSender.getStats": (RTCRtpSender.getStats, "5da0142919c095e3"),
    "RTCRtpSender._send_keyframe": (RTCRtpSender._send_keyframe, "26c49629470d1928"),
    "RTCRtpSender._run_rtp": (RTCRtpSender._run_rtp, "ff597a1d554cb373"),
    "RTCRtpSender._run_rtcp": (RTCRtpSender._run_rtcp, "51e0a924eac4e39b"),
    "RTCIceTransport.__init__": (RTCIceTransport.__init__, "b11403aba1c3a32b"),
    "Vp8Encoder._packetize": (Vp8Encoder._packetize, "03f61a0f38aa0d62"),
    "H264Encoder._packetize": (H264Encoder._packetize, "85ce3fe3b3174b5a"),
    "H264Encoder._split_bitstream": (H264Encoder._split_bitstream, "f6a4817f670e6e26"),
    "aioice.Connection.query_consent": (Connection.query_consent, "fe49173a650a378a"),
    "aioice.Connection.connect": (Connection.connect, "da51be46190141ee"),
    # Consent checks made from the bytes (relay/stun.py binding_request) write what build_request builds.
    "aioice.Connection.build_request": (Connection.build_request, "cd68d42d3765c2d1"),
    # The direct send path (aiortc_hooks seam 6).
    "RTCRtpSender._retransmit": (RTCRtpSender._retransmit, "ae0b2491944b52dc"),
    "RTCRtpSender.send": (RTCRtpSender.send, "3969482b77a2a65f"),
    "RTCDtlsTransport._send_rtp": (RTCDtlsTransport._send_rtp, "763b02bceb0b0ab9"),
    "HeaderExtensionsMap.configure": (HeaderExtensionsMap.configure, "e7bc27f7de53a334"),
    "HeaderExtensionsMap.set": (HeaderExtensionsMap.set, "55c43cd8952bc31a"),
    "aioice.StunProtocol.send_data": (StunProtocol.send_data, "8bfbce074a897482"),
    # asyncio's datagram transport, read until empty for publishers (aiortc_hooks seam 8; Python 3.11).
    "asyncio _SelectorDatagramTransport._read_ready": (_SelectorDatagramTransport._read_ready, "a94e5a17ae974496"),
    # SRTP and SRTCP handled as each datagram arrives (receive_inline): the steps of _recv_next it repeats.
    "RTCDtlsTransport._recv_next": (RTCDtlsTransport._recv_next, "998076720c05aa13"),
    # The outbound SRTP session's replay window (narrow_tx_window): _setup_srtp, copied with one change.
    "RTCDtlsTransport._setup_srtp": (RTCDtlsTransport._setup_srtp, "75cc6ec308f16da1"),
    "RTCDtlsTransport._handle_rtp_data": (RTCDtlsTransport._handle_rtp_data, "5def9061cc3da1f6"),
    # _receive_rtp repeats _handle_rtp_data and _handle_rtp_packet's steps with these of aiortc's.
    "RtpRouter.route_rtp": (RtpRouter.route_rtp, "e4bcc08d181438b7"),
    "RTCRtpReceiver._send_rtcp_nack": (RTCRtpReceiver._send_rtcp_nack, "5735e597c91b5cf6"),
    "RTCDtlsTransport._handle_rtcp_data": (RTCDtlsTransport._handle_rtcp_data, "5469e786d77b37b2"),
    "aioice.Connection.data_received": (Connection.data_received, "5631b17fab717d6b"),
    "aioice.StunProtocol.datagram_received": (StunProtocol.datagram_received, "ff4c8b910d45fb3a"),
    # Consent checks on the nominated pair answered ahead of aioice (relay/stun.py): what it would answer and do.
    "aioice.Connection.request_received": (Connection.request_received, "dcdc9a3862c1a0b4"),
    "aioice.Connection.check_incoming": (Connection.check_incoming, "cb3e32bd47e5fa82"),
    "aioice.Connection.recvfrom": (Connection.recvfrom, "676acc01e4a9a9da"),
    "pylibsrtp.Session.__init__": (pylibsrtp.Session.__init__, "2d5acb2032893aeb"),
    "pylibsrtp.Session.__process": (pylibsrtp.Session._Session__process, "924e126dae5c15b8"),  # type: ignore[attr-defined]
}


def fingerprint(obj: object) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def test_installed_aiortc_and_aioice_are_the_versions_the_hooks_were_written_for() -> None:
    assert version("aiortc") == aiortc_hooks.AIORTC_VERSION
    assert version("aioice") == aiortc_hooks.AIOICE_VERSION
    assert version("pylibsrtp") == aiortc_hooks.PYLIBSRTP_VERSION


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_hooked_aiortc_source_is_unchanged(name: str) -> None:
    obj, expected = FINGERPRINTS[name]
    assert fingerprint(obj) == expected, (
        f"{name} changed in this aiortc/aioice: re-check relay/aiortc_hooks.py against its new source"
    )


async def test_private_attributes_the_hooks_touch_exist_on_real_objects() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver("video")
    receiver, sender = transceiver.receiver, transceiver.sender
    for name in ("__jitter_buffer", "__codecs", "__rtx_ssrc", "__transport", "__rtcp_task", "__started",
                 "__decoder_thread", "__remote_bitrate_estimator", "__rtcp_ssrc"):
        assert hasattr(receiver, f"_RTCRtpReceiver{name}"), name
    for name in ("__encoder", "__rtp_started", "__rtp_exited", "__track", "__rtp_history", "__mid",
                 "__rtp_header_extensions_map", "__ntp_timestamp", "__rtp_timestamp", "__octet_count",
                 "__packet_count", "__log_debug", "__cname", "__lsr", "__lsr_time"):
        assert hasattr(sender, f"_RTCRtpSender{name}"), name
    assert callable(getattr(sender, "_RTCRtpSender__log_warning", None))
    assert callable(getattr(receiver, "_run_rtcp", None))
    connections = aiortc_hooks.ice_connections(pc)
    assert len(connections) == 1 and isinstance(connections[0], aioice.Connection)
    assert hasattr(connections[0], "_nominated") and callable(connections[0].build_request)
    assert isinstance(connections[0]._queue, asyncio.Queue)
    assert hasattr(sender, "_enabled") and hasattr(sender, "_ssrc")
    dtls = sender.transport
    for name in ("_tx_srtp", "_rx_srtp", "_state", "_RTCDtlsTransport__tx_bytes", "_RTCDtlsTransport__tx_packets",
                 "_RTCDtlsTransport__rx_bytes", "_RTCDtlsTransport__rx_packets"):
        assert hasattr(dtls, name), name
    assert hasattr(HeaderExtensionsMap(), "_HeaderExtensionsMap__ids")
    assert hasattr(pylibsrtp.Session(), "_srtp")
    await pc.close()


class PacketTrack(MediaStreamTrack):
    """Returns pre-encoded VP8 packets, as the relay's subscriber tracks do."""

    kind = "video"

    def __init__(self, packets: list[av.Packet]) -> None:
        super().__init__()
        self._packets = packets
        self._index = 0

    async def recv(self) -> av.Packet:
        await asyncio.sleep(1 / 30)
        packet = self._packets[self._index % len(self._packets)]
        packet.pts = self._index * 3000
        self._index += 1
        return packet


def encode_vp8(count: int) -> list[av.Packet]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"deadline": "realtime", "lag-in-frames": "0"}
    packets: list[av.Packet] = []
    for i in range(count):
        frame = av.VideoFrame(width=160, height=120, format="yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7) % 256]) * plane.buffer_size)
        frame.pts = i
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    for packet in packets:
        packet.time_base = fractions.Fraction(1, 90000)
    return packets


async def answer(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    """Offer and answer, short of the offerer applying the answer: the answerer's candidates are gathered (the
    hooks that need its sockets can be installed) and nothing connects yet."""
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await answer(offerer, answerer)
    await offerer.setRemoteDescription(answerer.localDescription)


async def test_hooked_receiver_delivers_encoded_frames_and_starts_no_decoder_thread() -> None:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender_pc.addTrack(PatternVideoTrack())
    frames: list[tuple[str, bytes, int, bool]] = []
    got_frames = asyncio.Event()
    hooked: list[RTCRtpReceiver] = []

    def on_frame(codec: str, data: bytes, timestamp: int, keyframe: bool) -> None:
        frames.append((codec, data, timestamp, keyframe))
        if len(frames) >= 10:
            got_frames.set()

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in receiver_pc.getTransceivers() if t.receiver.track is track)
        aiortc_hooks.take_encoded_frames(receiver, VideoAssembler({97: "VP8"}, on_frame, lambda: None))
        hooked.append(receiver)

    threads_before = {t.name for t in threading.enumerate()}
    await connect(sender_pc, receiver_pc)
    await asyncio.wait_for(got_frames.wait(), 10)
    assert frames[0][0] == "VP8" and frames[0][3], "the first frame forwarded is a keyframe"
    assert not aiortc_hooks.decoder_thread_started(hooked[0])
    assert hooked[0]._RTCRtpReceiver__remote_bitrate_estimator is None  # type: ignore[attr-defined]
    new_threads = {t.name for t in threading.enumerate()} - threads_before
    assert not any("decoder" in name for name in new_threads), new_threads
    await sender_pc.close()
    await receiver_pc.close()


async def test_hooked_sender_packs_av_packets_without_an_encoder_and_reports_keyframe_requests() -> None:
    packets = await asyncio.to_thread(encode_vp8, 30)
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender = sender_pc.addTrack(PacketTrack(packets))
    counters = ForwardCounters()
    packetizer = Packetizer("VP8", counters)
    aiortc_hooks.pack_without_encoder(sender, packetizer)
    requests = asyncio.Event()
    aiortc_hooks.on_keyframe_request(sender, requests.set)
    decoded = asyncio.Event()
    consumers: list[asyncio.Task[None]] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def consume() -> None:
            await track.recv()
            decoded.set()

        consumers.append(asyncio.ensure_future(consume()))

    await connect(sender_pc, receiver_pc)
    await asyncio.wait_for(decoded.wait(), 10)
    assert aiortc_hooks.sender_encoder(sender) is packetizer
    assert counters.frames > 0 and counters.packets >= counters.frames
    receiver = receiver_pc.getReceivers()[0]
    await aiortc_hooks.send_pli(receiver, sender._ssrc)
    await asyncio.wait_for(requests.wait(), 5)
    rembs: list[tuple[int, list[int]]] = []
    got_remb = asyncio.Event()
    handle = sender._handle_rtcp_packet

    async def spy(packet: object) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            rembs.append(unpack_remb_fci(packet.fci))
            got_remb.set()
        await handle(packet)  # type: ignore[arg-type]

    sender._handle_rtcp_packet = spy  # type: ignore[method-assign]
    await aiortc_hooks.send_remb(receiver, 1_500_000, [sender._ssrc])
    await asyncio.wait_for(got_remb.wait(), 5)
    assert rembs[-1][1] == [sender._ssrc] and abs(rembs[-1][0] - 1_500_000) < 1_500_000 * 0.01
    await sender_pc.close()
    await receiver_pc.close()


class _IdleTrack(MediaStreamTrack):
    kind = "video"

    async def recv(self) -> Any:
        raise MediaStreamError


class _RecordingTransport:
    """The slice of RTCDtlsTransport a started sender uses, recording what it is asked to send."""

    state = "connected"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def _register_rtp_sender(self, sender: object, parameters: object) -> None:
        pass

    def _unregister_rtp_sender(self, sender: object) -> None:
        pass

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


async def _run_sender(lean: bool, frames: list[RTCEncodedFrame], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # Same randomness and clock for both loops, so their output can be compared byte for byte.
    for module in (aiortc.rtcrtpsender, aiortc_hooks):
        monkeypatch.setattr(module, "random_sequence_number", lambda: 65530)
        monkeypatch.setattr(module, "random32", lambda: 0xFFFFFF00)
    monkeypatch.setattr(aiortc.clock, "current_ntp_time", lambda: 0xE8A1_2345_6789_ABCD)
    transport = _RecordingTransport()
    sender = RTCRtpSender("video", transport)  # type: ignore[arg-type]
    queue = list(frames)

    async def next_encoded_frame(codec: object) -> RTCEncodedFrame | None:
        await asyncio.sleep(0)
        if not queue:
            raise MediaStreamError
        return queue.pop(0)

    sender._next_encoded_frame = next_encoded_frame  # type: ignore[method-assign,assignment]
    sender.replaceTrack(_IdleTrack())
    if lean:
        aiortc_hooks.lean_rtp_loop(sender)
    parameters = RTCRtpSendParameters(
        codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)],
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
            RTCRtpHeaderExtensionParameters(id=5, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
        ],
        muxId="1",
    )
    await sender.send(parameters)
    s: Any = sender
    await asyncio.wait_for(s._RTCRtpSender__rtp_exited.wait(), 5)
    extensions_map = s._RTCRtpSender__rtp_header_extensions_map
    history = {k: p.serialize(extensions_map) for k, p in s._RTCRtpSender__rtp_history.items()}
    result = {
        "sent": [data.replace(sender._ssrc.to_bytes(4, "big"), b"SSRC") for data in transport.sent],
        "history": {k: v.replace(sender._ssrc.to_bytes(4, "big"), b"SSRC") for k, v in history.items()},
        "ntp": s._RTCRtpSender__ntp_timestamp,
        "rtp": s._RTCRtpSender__rtp_timestamp,
        "octets": s._RTCRtpSender__octet_count,
        "packets": s._RTCRtpSender__packet_count,
        "track": s.track,
        "encoder": s._RTCRtpSender__encoder,
    }
    await sender.stop()
    return result


async def test_a_senders_receiver_reports_are_read_in_place_as_getstats_returns_them() -> None:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender = sender_pc.addTrack(PacketTrack(await asyncio.to_thread(encode_vp8, 30)))
    aiortc_hooks.pack_without_encoder(sender, Packetizer("VP8", ForwardCounters()))
    consumers: list[asyncio.Task[None]] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def consume() -> None:
            while True:
                await track.recv()

        consumers.append(asyncio.ensure_future(consume()))

    try:
        await connect(sender_pc, receiver_pc)
        assert aiortc_hooks.reported_reception(sender) == []
        await asyncio.wait_for(until(lambda: bool(aiortc_hooks.reported_reception(sender))), 10)  # RR: 0.5-1.5 s
        [report] = aiortc_hooks.reported_reception(sender)
        assert report.packetsReceived > 0 and report.ssrc == receiver_pc.getReceivers()[0]._RTCRtpReceiver__rtcp_ssrc
        assert [report] == [s for s in (await sender.getStats()).values() if s.type == "remote-inbound-rtp"]
    finally:
        for task in consumers:
            task.cancel()
        await sender_pc.close()
        await receiver_pc.close()


async def test_lean_rtp_loop_sends_exactly_what_aiortcs_loop_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [
        RTCEncodedFrame([b"\x10key" * 300, b"\x00more" * 200, b"\x00end"], 0, None),  # type: ignore[arg-type]
        RTCEncodedFrame([b"\x10one"], 3000, None),  # type: ignore[arg-type]
        RTCEncodedFrame([b"opus"], 6000, 30),
        RTCEncodedFrame([b"\x10a", b"\x00b"], 9000, None),  # type: ignore[arg-type]  # wraps seq and ts
    ]
    ours = await _run_sender(True, frames, monkeypatch)
    theirs = await _run_sender(False, frames, monkeypatch)
    assert len(ours["sent"]) == 7
    assert ours == theirs


def test_srtp_protect_has_the_libsrtp_2_signature_the_compiled_writer_calls() -> None:
    from pylibsrtp._binding import ffi, lib

    assert str(ffi.typeof(lib.srtp_protect)) == "<ctype 'srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)'>"
    protect, srtp = aiortc_hooks.srtp_handles(pylibsrtp.Session())
    assert protect and srtp
    assert str(ffi.typeof(lib.srtp_protect_rtcp)) == str(ffi.typeof(lib.srtp_protect)), "the writers' SR path"
    assert aiortc_hooks.report_handles()


async def test_run_eagerly_runs_a_handler_now_and_lets_a_task_finish_one_that_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps: list[str] = []
    later: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def at_once() -> None:
        steps.append("at once")

    async def waits() -> None:
        steps.append("before")
        steps.append(await later)
        await asyncio.sleep(0)
        steps.append("after")

    async def fails() -> None:
        raise ValueError("a bad packet")

    aiortc_hooks.run_eagerly(at_once())
    assert steps == ["at once"], "no task, no turn of the loop"
    aiortc_hooks.run_eagerly(waits())
    assert steps == ["at once", "before"]
    later.set_result("resumed")
    await asyncio.wait_for(until(lambda: "after" in steps), 5)
    assert steps == ["at once", "before", "resumed", "after"]
    aiortc_hooks.run_eagerly(fails())
    assert "RTP/RTCP handler failed" in caplog.text


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_srtp_is_handled_as_it_arrives_and_dtls_still_takes_the_queue_with_a_narrow_tx_window(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender_pc.addTrack(PacketTrack(encode_vp8(30)))
    frames: list[bytes] = []

    class Collect:
        def add(self, packet: Any) -> tuple[bool, None]:
            if packet.marker:
                frames.append(b"")
            return False, None

    receiver_pc.on("track", lambda track: aiortc_hooks.take_encoded_frames(
        next(t.receiver for t in receiver_pc.getTransceivers() if t.receiver.track is track), Collect()))
    channel = sender_pc.createDataChannel("chat")
    got: list[str] = []
    receiver_pc.on("datachannel", lambda ch: ch.on("message", got.append))
    await answer(sender_pc, receiver_pc)
    assert aiortc_hooks.receive_inline(receiver_pc) == 1
    assert aiortc_hooks.narrow_tx_window(receiver_pc) == 1
    # The sender gets the receiver's RTCP (its first report comes 0.5-1.5 s in): it receives inline too, or
    # its sockets' STUN parse of those reports would count below, whenever a report arrives before the end.
    assert aiortc_hooks.receive_inline(sender_pc) == 1
    parsed_as_stun: list[bytes] = []
    parse = aioice.stun.parse_message
    monkeypatch.setattr(aioice.stun, "parse_message", lambda data, *args, **kwargs: (
        parsed_as_stun.append(data), parse(data, *args, **kwargs))[1])
    [connection] = aiortc_hooks.ice_connections(receiver_pc)
    queued: list[bytes] = []
    put = connection._queue.put_nowait
    connection._queue.put_nowait = lambda item: (queued.append(item[0]) if item else None, put(item))[1]
    await sender_pc.setRemoteDescription(receiver_pc.localDescription)
    await asyncio.wait_for(until(lambda: channel.readyState == "open"), 10)
    channel.send("hello")
    await asyncio.wait_for(until(lambda: len(frames) >= 20 and got == ["hello"]), 10)
    dtls: Any = next(iter(receiver_pc.getTransceivers())).receiver.transport
    srtp_queued = [d for d in queued if 127 < d[0] < 192]
    assert not srtp_queued or len(srtp_queued) < 5, "SRTP after the handshake is handled as it arrives"
    assert any(19 < d[0] < 64 for d in queued), "DTLS records (the handshake, the data channel) take the queue"
    assert parsed_as_stun and not [d for d in parsed_as_stun if 127 < d[0] < 192], (
        "STUN is parsed as before; RTP and RTCP skip the attempt")
    assert dtls._RTCDtlsTransport__rx_packets >= len(frames), "aiortc's transport counters still count"
    # An empty datagram to the receiver's socket (anyone can send one) is dropped, not fatal to the transport.
    pair = connection._nominated[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.sendto(b"", (pair.local_candidate.host, pair.local_candidate.port))
    seen = len(frames)
    await asyncio.wait_for(until(lambda: len(frames) >= seen + 10), 10)
    assert dtls.state == "connected"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "nothing failed on it"
    [sender] = sender_pc.getSenders()

    async def receiver_reports() -> None:
        while not any(s.type == "remote-inbound-rtp" for s in (await sender.getStats()).values()):
            await asyncio.sleep(0.1)

    # The receiver's RTCP goes out through the session narrow_tx_window built, and the other end decrypts it.
    await asyncio.wait_for(receiver_reports(), 10)
    await sender_pc.close()
    await receiver_pc.close()


async def test_a_lost_packet_is_nacked_and_its_retransmission_reaches_the_assembler_in_place() -> None:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender_pc.addTrack(PacketTrack(encode_vp8(30)))
    received: list[int] = []
    depayloaded: list[bytes] = []

    class Collect:
        def add(self, packet: Any) -> tuple[bool, None]:
            received.append(packet.sequence_number)
            depayloaded.append(aiortc_hooks.depayloaded(packet))
            return False, None

    receiver_pc.on("track", lambda track: aiortc_hooks.take_encoded_frames(
        next(t.receiver for t in receiver_pc.getTransceivers() if t.receiver.track is track), Collect()))
    try:
        await answer(sender_pc, receiver_pc)
        aiortc_hooks.receive_inline(receiver_pc)
        [connection] = aiortc_hooks.ice_connections(receiver_pc)
        inline = connection.data_received
        media = 0
        dropped: list[int] = []
        ssrcs: list[bytes] = []

        def lossy(data: bytes, component: int) -> None:
            nonlocal media
            if 127 < data[0] < 192 and not is_rtcp(data):
                ssrcs.append(data[8:12])  # in the clear in SRTP
                media += 1
                if media in (40, 41, 70) and data[8:12] == ssrcs[0]:  # not the retransmissions (RTX, another SSRC)
                    dropped.append(media)
                    return
            inline(data, component)

        connection.data_received = lossy
        nacks: list[list[int]] = []
        [transceiver] = receiver_pc.getTransceivers()
        send_nack = transceiver.receiver._send_rtcp_nack
        transceiver.receiver._send_rtcp_nack = lambda ssrc, lost: (nacks.append(lost), send_nack(ssrc, lost))[1]
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)

        def whole() -> bool:
            return sorted(set(received)) == list(range(received[0], max(received) + 1))

        # Every lost packet came back (by RTX, which aiortc's own path unwraps) while the stream went on.
        await asyncio.wait_for(until(lambda: len(dropped) == 3 and media > 80 and whole()), 15)
        assert len(set(ssrcs)) == 2, "the retransmissions came as RTX"
        assert len(nacks) >= 2 and sum(len(lost) for lost in nacks) >= 3
        assert all(depayloaded), "each packet reached the assembler depayloaded"
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_consent_checks_on_the_nominated_pair_are_answered_ahead_of_aioice() -> None:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender_pc.addTrack(PacketTrack(encode_vp8(3)))
    try:
        await answer(sender_pc, receiver_pc)
        aiortc_hooks.receive_inline(receiver_pc)
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        await asyncio.wait_for(until(lambda: receiver_pc.connectionState == "connected"), 10)
        [checker], [answerer] = aiortc_hooks.ice_connections(sender_pc), aiortc_hooks.ice_connections(receiver_pc)
        seen_by_aioice: list[bool] = []
        handle = answerer.request_received
        answerer.request_received = lambda message, *args: (  # type: ignore[method-assign]
            seen_by_aioice.append("USE-CANDIDATE" in message.attributes), handle(message, *args))[1]
        pair = checker._nominated[1]
        key = checker.remote_password.encode()
        for nominate in (False, False, True):
            response, _ = await pair.protocol.request(checker.build_request(pair, nominate=nominate),
                                                      pair.remote_addr, integrity_key=key, retransmissions=1)
            assert response.message_class == aioice.stun.Class.RESPONSE
            assert response.attributes["XOR-MAPPED-ADDRESS"] == (pair.local_candidate.host,
                                                                pair.local_candidate.port)
        assert seen_by_aioice == [True], "plain checks are answered before aioice; a nomination still reaches it"
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_the_relays_consent_checks_are_made_from_the_bytes_and_their_answers_counted() -> None:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender_pc.addTrack(PacketTrack(encode_vp8(3)))
    changes: list[str] = []
    try:
        await answer(sender_pc, receiver_pc)
        [checker] = aiortc_hooks.ice_connections(receiver_pc)
        aiortc_hooks.watch_consent([checker], aiortc_hooks.ConsentPolicy(0.1, 0.6, 30.0), changes.append)
        aiortc_hooks.receive_inline(receiver_pc)
        through_aioice: list[object] = []  # aioice's transactions (ICE's own checks, until it connects)
        for protocol in checker._protocols:
            protocol.request = lambda *args, _request=protocol.request, **kwargs: (  # type: ignore[misc]
                through_aioice.append(args), _request(*args, **kwargs))[1]
        [answerer] = aiortc_hooks.ice_connections(sender_pc)
        checks: list[bool] = []
        answering = [True]
        handle = answerer.request_received
        answerer.request_received = lambda message, *args: (  # type: ignore[method-assign]
            checks.append("USE-CANDIDATE" in message.attributes), answering[0] and handle(message, *args))[1]
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        await asyncio.wait_for(until(lambda: receiver_pc.iceConnectionState == "completed"), 10)
        through_aioice.clear()
        checks.clear()
        await asyncio.wait_for(until(lambda: checks.count(False) >= 8), 10)  # 0.8 s of checks, 0.1 s apart
        assert changes == [] and through_aioice == [], "every check was answered, none went through aioice"
        answering[0] = False
        await asyncio.wait_for(until(lambda: changes == ["lost"]), 5)
        assert not checker._relay_checks or len(checker._relay_checks) <= 16, "unanswered checks are given up"
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_aiortc_reads_a_direct_senders_counters_from_its_writer() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender = pc.addTransceiver("video").sender
    dtls = sender.transport
    for name in ("_RTCRtpSender__ntp_timestamp", "_RTCRtpSender__rtp_timestamp", "_RTCRtpSender__octet_count",
                 "_RTCRtpSender__packet_count"):
        assert name in vars(sender), name
    for name in ("_RTCDtlsTransport__tx_bytes", "_RTCDtlsTransport__tx_packets"):
        assert name in vars(dtls), name

    class Counting:
        frames = 1
        counts = (123456, 789, 1000, 10, 1200)

    aiortc_hooks.count_from_writer(sender, dtls, Counting())
    s: Any = sender
    d: Any = dtls
    assert isinstance(sender, RTCRtpSender) and isinstance(dtls, RTCDtlsTransport)
    assert (s._RTCRtpSender__ntp_timestamp, s._RTCRtpSender__rtp_timestamp) == (123456, 789)
    assert (s._RTCRtpSender__octet_count, s._RTCRtpSender__packet_count) == (1000, 10)
    d._RTCDtlsTransport__tx_bytes += 50  # as aiortc's _send_rtp counts an RTCP packet
    d._RTCDtlsTransport__tx_packets += 1
    assert (d._RTCDtlsTransport__tx_bytes, d._RTCDtlsTransport__tx_packets) == (1250, 11)
    await pc.close()
