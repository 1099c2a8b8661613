"""An edge's pull of a stream from its origin: one server-to-server peer connection, relay to relay.

A stream too large for one node is served by several: its publisher's node (the *origin*) and any number of
*edges*, each receiving the stream once from the origin and fanning it out to its own viewers. This is
mediasoup's ``pipeToRouter`` across machines. The origin needs nothing new: the edge offers recvonly audio and
video like a viewer's browser, and the origin's relay answers it with ``watch_stream`` (one subscriber, however
many viewers the edge has). On the edge, the :class:`Upstream` is the stream's publisher: what it receives feeds
the stream's sources, still encoded (:func:`relay.aiortc_hooks.take_encoded_frames`), so the edge's viewers are
served exactly as the origin's are.

Keyframes cross the hop by themselves: a joiner on the edge asks the edge's source for one, which sends a PLI
up this connection (throttled by the edge source's requester); the origin's relay takes it as any viewer's PLI
(throttled again by the origin source's requester) and asks the publisher. A publisher that drops and returns
is invisible here: the origin's source keeps one outgoing timeline across the reconnect. So is a new origin (the
old one's node died): a new pull by the same puller feeds the same sources; and if the edge itself becomes the
origin, :meth:`relay.Relay.hand_over_pull` hands the pull's sources to the publisher's new connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from relay.aiortc_hooks import drain_datagrams, ice_connections, receive_inline, take_encoded_frames
from relay.depacketizer import AudioAssembler
from relay.errors import BadSdpError
from relay.forwarder import Source
from relay.peer import prefer_codecs
from relay.sdp import SessionSummary, parse_session

logger = logging.getLogger(__name__)

KINDS = ("audio", "video")


class Upstream:
    """The edge's end of a pull: a recvonly peer connection to the origin's relay, feeding the edge's sources.

    :param stream_id: the stream pulled.
    :param puller_id: the pull's participant id (the edge stream's publisher; the origin's viewer).
    :param config: the ICE configuration (from :func:`relay.ice.configuration`).
    :param publish: the edge stream's source of a kind, fed by what arrives.
    :param on_state: called with aiortc's connection state on each change (``connected``, ``failed``, ...).
    """

    def __init__(self, stream_id: str, puller_id: str, *, config: RTCConfiguration,
                 publish: Callable[[str], Source], on_state: Callable[[str], None] | None = None,
                 audio_codecs: tuple[str, ...] = ("opus",), video_codecs: tuple[str, ...] = ("VP8", "H264")) -> None:
        self.stream_id = stream_id
        self.puller_id = puller_id
        self.pc = RTCPeerConnection(config)
        self._publish = publish
        self._on_state = on_state
        self._answer: SessionSummary | None = None
        self._sources: list[Source] = []
        self._closing: asyncio.Task[None] | None = None
        prefs = {"audio": audio_codecs, "video": video_codecs}
        for kind in KINDS:
            prefer_codecs(self.pc.addTransceiver(kind, "recvonly"), kind, prefs[kind])
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._state_changed)

    def __repr__(self) -> str:
        return f"Upstream({self.stream_id}/{self.puller_id}, {self.state})"

    @property
    def state(self) -> str:
        return "closed" if self._closing is not None else str(self.pc.connectionState)

    async def offer(self) -> str:
        """The offer for the origin's relay (every ICE candidate in it: aiortc gathers before it returns)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        # The edge's publisher: its sockets are read until empty at each wake-up (relay/overload.py), so that an
        # edge busy with its own viewers never lets the stream's media, or its consent answers, overflow the kernel.
        drain_datagrams(ice_connections(self.pc))
        receive_inline(self.pc)
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        """Apply the origin's answer; media flows once ICE and DTLS connect."""
        self._answer = parse_session(answer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except ValueError as exc:
            raise BadSdpError(f"cannot apply the origin's answer: {exc}") from exc

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        section = self._answer.by_mid(transceiver.mid) if transceiver is not None and self._answer else None
        if transceiver is None or section is None:
            return
        receiver = transceiver.receiver
        if track.kind not in KINDS or not section.sends:
            take_encoded_frames(receiver, AudioAssembler({}, lambda *_: None))  # never decode
            return
        source = self._publish(track.kind)
        self._sources.append(source)
        take_encoded_frames(receiver, source.attach(receiver, section.codecs, section.media_ssrc))

    def _state_changed(self) -> None:
        state = str(self.pc.connectionState)
        logger.info("%r: %s", self, state)
        if self._on_state is not None and self._closing is None:
            self._on_state(state)

    def close(self) -> asyncio.Task[None]:
        """Close the connection; the sources wait for a feed again (a new pull, or the end). Idempotent."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        return self._closing

    async def _close(self) -> None:
        for transceiver in self.pc.getTransceivers():
            for source in self._sources:
                source.detach(transceiver.receiver)
        await self.pc.close()
