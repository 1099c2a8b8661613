"""One participant's peer connection to the relay: negotiation, media wiring and connection truth.

The browser always offers; the peer answers. For each audio/video m-line it decides, from the
offer's direction and the participant's role, whether the relay receives (the participant publishes
into a :class:`~relay.forwarder.Source`) and whether it sends (a
:class:`~relay.forwarder.SubscriberTrack` is attached to the answer's transceiver at once, so media
flows whenever a publisher appears, without renegotiation).

Connection truth: "connected" means ICE and DTLS are connected (aiortc's ``connectionState``), and
stays true only while ICE consent freshness checks are answered. A peer that stops answering is
reported disconnected within ~2 consent intervals, and failed when consent expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCDataChannel, RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender

from relay.aiortc_hooks import (
    AUDIO_SR_INTERVAL,
    VIDEO_SR_INTERVAL,
    ConsentPolicy,
    DirectPath,
    direct_rtp_loop,
    drain_datagrams,
    ice_connections,
    lean_rtp_loop,
    narrow_tx_window,
    on_keyframe_request,
    pack_without_encoder,
    receive_inline,
    report_every,
    reported_reception,
    take_encoded_frames,
    watch_consent,
)
from relay.depacketizer import AudioAssembler
from relay.errors import BadCandidateError, BadSdpError
from relay.forwarder import Source, SubscriberTrack
from relay.ice import MAX_CANDIDATES_PER_PEER, CandidatePolicy
from relay.metrics import LinkQuality
from relay.outlet import Outlet
from relay.packetizer import ForwardCounters, Packetizer, PayloadCache
from relay.sdp import Offer, SessionSummary, parse_session
from relay.wire import PYTHON, WireKind

logger = logging.getLogger(__name__)

#: Peer states; the relay emits ``participant-<state>`` for the last four.
STATES = ("new", "connecting", "connected", "disconnected", "failed", "closed")

StateCallback = Callable[["Peer", str, float], None]
ChatCallback = Callable[["Peer", str], None]


def prefer_codecs(transceiver: object, kind: str, codecs: tuple[str, ...]) -> None:
    """Negotiate only ``codecs`` (in that order) on ``transceiver``, and RTX for video."""
    names = [c.upper() for c in codecs]
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    preferred = [c for name in names for c in capabilities if c.mimeType.split("/")[1].upper() == name]
    if kind == "video":
        preferred += [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
    transceiver.setCodecPreferences(preferred)  # type: ignore[attr-defined]


@dataclass
class PeerQuality:
    """RTCP-derived quality of one peer: ``up`` (what it publishes), ``down`` (what it receives)."""

    up: LinkQuality = field(default_factory=LinkQuality)
    down: LinkQuality = field(default_factory=LinkQuality)


class Peer:
    """A participant's ``RTCPeerConnection`` to the relay, inside one room or stream.

    :param participant_id: the participant's id.
    :param scope: the room or stream id.
    :param config: the ICE configuration (from :func:`relay.ice.configuration`).
    :param consent: how fast a silent peer is reported disconnected.
    :param on_state: called with (peer, state, monotonic time) on each state change.
    :param on_chat: called with (peer, text) for each data channel text message.
    :param connect_timeout: a peer not connected by then is failed and closed.
    :param direct_send: subscribers' frames are written by the fan-out (see relay.outlet).
    :param wire: the writer implementation of the direct path (see relay.wire).
    :param candidates: which remote candidates are used (see :class:`relay.ice.CandidatePolicy`).
    :param read_first: read this peer's sockets until empty at each wake-up, as a publisher's are, though it only
        receives: an edge's pull, whose consent answers must not wait behind its RTCP when the loop is late, or the
        pull expires and the edge's whole audience loses the stream.
    """

    def __init__(
        self,
        *,
        participant_id: str,
        scope: str,
        config: RTCConfiguration,
        consent: ConsentPolicy,
        on_state: StateCallback,
        on_chat: ChatCallback,
        forwarded: dict[str, ForwardCounters],
        audio_codecs: tuple[str, ...] = ("opus",),
        video_codecs: tuple[str, ...] = ("VP8", "H264"),
        connect_timeout: float = 30.0,
        direct_send: bool = True,
        wire: WireKind = PYTHON,
        candidates: CandidatePolicy | None = None,
        read_first: bool = False,
    ) -> None:
        self.participant_id = participant_id
        self.scope = scope
        self.state = "new"
        self.created_at = time.monotonic()
        self.connected_at: float | None = None
        self.pc = RTCPeerConnection(config)
        self.published: dict[str, Source] = {}
        self.tracks: dict[str, SubscriberTrack] = {}
        self._consent = consent
        self._on_state = on_state
        self._on_chat = on_chat
        self._forwarded = forwarded
        self._codec_prefs = {"audio": audio_codecs, "video": video_codecs}
        self._connect_timeout = connect_timeout
        self._direct_send = direct_send
        self._wire = wire
        self._read_first = read_first
        self._timeout: asyncio.TimerHandle | None = None
        self._channel: RTCDataChannel | None = None
        self._offer: SessionSummary | None = None
        self._closing: asyncio.Task[None] | None = None
        self._candidate_policy = candidates or CandidatePolicy()
        self._remote_candidates = 0  # given to ICE, from the offer and trickled
        # Candidates trickled before the offer is applied would match no transceiver yet.
        self._early_candidates: list[RTCIceCandidate | None] | None = []
        self._label = f"{scope}/{participant_id}"
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)

    def __repr__(self) -> str:
        return f"Peer({self._label}, {self.state})"

    @property
    def closed(self) -> bool:
        return self._closing is not None

    async def answer(
        self,
        offer: Offer,
        *,
        publish: Callable[[str], Source | None],
        subscribe: Callable[[str], SubscriberTrack | None],
    ) -> str:
        """Negotiate a checked offer (:func:`relay.sdp.check_offer`); returns the answer SDP (with all ICE
        candidates).

        :param publish: for a kind the participant sends, the source its media feeds (or None).
        :param subscribe: for a kind the participant receives, its subscriber track (or None).
        """
        self._offer = offer.summary
        self._count_candidates(offer.candidates)
        seen: set[str] = set()
        for media in offer.summary.media:
            track: SubscriberTrack | None = None
            receive = False
            if media.kind not in seen:  # one track per kind; extra m-lines stay inactive
                seen.add(media.kind)
                if media.receives:
                    track = subscribe(media.kind)
                if media.sends:
                    source = publish(media.kind)
                    if source is not None:
                        self.published[media.kind] = source
                        receive = True
            direction = {(True, True): "sendrecv", (True, False): "sendonly",
                         (False, True): "recvonly", (False, False): "inactive"}[(track is not None, receive)]
            transceiver = self.pc.addTransceiver(track if track is not None else media.kind, direction)
            self._prefer_codecs(transceiver, media.kind)
            if track is not None:
                self.tracks[media.kind] = track
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
            early, self._early_candidates = self._early_candidates or [], None
            for candidate in early:
                await self.pc.addIceCandidate(candidate)
            watch_consent(ice_connections(self.pc), self._consent, self._on_consent)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            receive_inline(self.pc)
            narrow_tx_window(self.pc)
            if self.published or self._read_first:  # a publisher's or a pull's packets are read first
                drain_datagrams(ice_connections(self.pc))  # (relay/overload.py)
        except (ValueError, OperationError, InvalidAccessError, InvalidStateError, InternalError) as exc:
            raise BadSdpError(f"cannot negotiate offer: {exc}") from exc
        answer = parse_session(self.pc.localDescription.sdp)
        for transceiver in self.pc.getTransceivers():
            outgoing = transceiver.sender.track
            answered = answer.by_mid(transceiver.mid)
            if isinstance(outgoing, SubscriberTrack) and answered is not None and answered.first_codec:
                self._wire_sender(transceiver.sender, outgoing, answered.first_codec)
        self.state = "connecting"
        self._timeout = asyncio.get_running_loop().call_later(self._connect_timeout, self._connect_timed_out)
        return self.pc.localDescription.sdp

    async def add_ice_candidate(self, candidate: RTCIceCandidate | None) -> None:
        """Add a checked trickled candidate (None: end-of-candidates); one that arrives before the offer is
        applied waits for it. A candidate the policy does not use is dropped quietly (browsers send them)."""
        if candidate is not None:
            why = self._candidate_policy.unused_reason(candidate)
            if why is not None:
                logger.debug("Peer(%s) ignores candidate %s:%s: %s", self._label, candidate.ip, candidate.port, why)
                return
            self._count_candidates(1)
        if self._early_candidates is not None:
            self._early_candidates.append(candidate)
            return
        await self.pc.addIceCandidate(candidate)

    def _count_candidates(self, count: int) -> None:
        if self._remote_candidates + count > MAX_CANDIDATES_PER_PEER:
            raise BadCandidateError(f"at most {MAX_CANDIDATES_PER_PEER} ICE candidates per connection",
                                    code="too_many_candidates")
        self._remote_candidates += count

    def send_chat(self, text: str) -> bool:
        """Send ``text`` over the participant's data channel; False if it is not open."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return False
        channel.send(text)
        return True

    async def quality(self) -> PeerQuality:
        """Loss and RTT from this peer's RTCP reports: the far end's receiver reports on what we send, and aiortc's
        own reception counts of what a publisher sends us (a viewer's receivers get nothing, and are not asked)."""
        result = PeerQuality()
        if self.published:
            for receiver in self.pc.getReceivers():
                for stats in (await receiver.getStats()).values():
                    if getattr(stats, "type", "") == "inbound-rtp":
                        lost = max(0, stats.packetsLost)
                        total = lost + stats.packetsReceived
                        result.up.packets_lost += lost
                        result.up.fraction_lost.append(lost / total if total else 0.0)
        for sender in self.pc.getSenders():
            for report in reported_reception(sender):
                result.down.packets_lost += max(0, report.packetsLost)
                result.down.fraction_lost.append(report.fractionLost / 256)
                if report.roundTripTime is not None:
                    result.down.rtt.append(report.roundTripTime)
        if self.published and result.down.rtt:
            # aiortc measures RTT only on its senders; the path is the same in both directions.
            result.up.rtt = list(result.down.rtt)
        return result

    def close(self) -> asyncio.Task[None]:
        """Close the connection and release its tracks; idempotent, returns the closing task."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        return self._closing

    async def _close(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
        for transceiver in self.pc.getTransceivers():
            for source in self.published.values():
                source.detach(transceiver.receiver)
        for track in self.tracks.values():
            track.stop()
        await self.pc.close()
        self._set_state("closed")

    def _prefer_codecs(self, transceiver: object, kind: str) -> None:
        prefer_codecs(transceiver, kind, self._codec_prefs[kind])

    def _wire_sender(self, sender: RTCRtpSender, track: SubscriberTrack, codec: str) -> None:
        track.codec = codec
        def cache() -> PayloadCache | None:
            return track.source.payload_cache if track.source is not None else None

        packer = Packetizer(codec, self._forwarded[track.kind], cache)
        pack_without_encoder(sender, packer)
        on_keyframe_request(sender, lambda: track.request_keyframe("pli"))
        report_every(sender, AUDIO_SR_INTERVAL if track.kind == "audio" else VIDEO_SR_INTERVAL)
        if not self._direct_send:
            lean_rtp_loop(sender)
            return

        async def run(path: DirectPath) -> None:
            outlet = Outlet(path, packer, self._wire)
            track.attach_outlet(outlet)
            try:
                await outlet.closed
            finally:
                track.detach_outlet(outlet)

        direct_rtp_loop(sender, run)

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        if transceiver is None:
            return
        receiver = transceiver.receiver
        offer = self._offer.by_mid(transceiver.mid) if self._offer is not None else None
        source = self.published.get(track.kind)
        if source is None or offer is None or transceiver.direction not in ("recvonly", "sendrecv"):
            # Media we do not forward: still never let aiortc decode it.
            take_encoded_frames(receiver, AudioAssembler({}, lambda *_: None))
            return
        take_encoded_frames(receiver, source.attach(receiver, offer.codecs, offer.media_ssrc))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self._channel = channel

        @channel.on("message")
        def on_message(message: object) -> None:
            if isinstance(message, str):
                self._on_chat(self, message)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.state in ("new", "connecting"):
            if self._timeout is not None:
                self._timeout.cancel()
            self.connected_at = time.monotonic()
            self._set_state("connected")
        elif state == "failed" and self.state not in ("failed", "closed"):
            self._fail("ICE or DTLS failed")
        elif state == "closed" and self._closing is None:
            # The remote end closed DTLS (a clean hang-up): aiortc closed the connection itself.
            logger.info("Peer(%s) closed by the remote end", self._label)
            if self.state == "connected":
                self._set_state("disconnected")
            self.close()

    def _on_consent(self, change: str) -> None:
        if change == "lost" and self.state == "connected":
            logger.info("Peer(%s) stopped answering ICE consent checks", self._label)
            self._set_state("disconnected")
        elif change == "regained" and self.state == "disconnected":
            logger.info("Peer(%s) answers ICE consent checks again", self._label)
            self._set_state("connected")
        elif change == "expired" and self.state not in ("failed", "closed"):
            self._fail("ICE consent expired")

    def _connect_timed_out(self) -> None:
        if self.state in ("new", "connecting"):
            self._fail(f"not connected after {self._connect_timeout:.0f} s")

    def _fail(self, why: str) -> None:
        logger.warning("Peer(%s) failed: %s", self._label, why)
        if self.state == "connected":
            self._set_state("disconnected")
        self._set_state("failed")
        self.close()

    def _set_state(self, state: str) -> None:
        if state == self.state or self.state == "closed":
            return
        logger.debug("Peer(%s) %s -> %s", self._label, self.state, state)
        self.state = state
        self._on_state(self, state, time.monotonic())
