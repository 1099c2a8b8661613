"""Every place the relay reaches into aiortc 1.16 / aioice 0.13 / pylibsrtp 1.0 internals, and nowhere else.

aiortc is built for endpoints that decode what they receive and encode what they send. A relay
forwards encoded media, so it meets aiortc (and asyncio) at ten private seams (docs/aiortc.md lists them all):

1. ``RTCRtpReceiver.receive()`` starts a decoder thread fed from a private queue. We replace it,
   per receiver, with the same steps minus the thread (:func:`take_encoded_frames`).
2. ``RTCRtpReceiver._handle_rtp_packet`` hands each depayloaded RTP packet to its private
   ``__jitter_buffer``. We swap that for our own frame assembler, which delivers whole encoded
   frames to the relay instead of to a decoder (:func:`take_encoded_frames`), reading the payload
   aiortc depayloaded into each packet's private ``_data`` (:func:`depayloaded`). We also drop the
   receiver's ``__remote_bitrate_estimator``: it costs ~0.25 ms of Python per video packet and sends
   a REMB for most packets, which a relay cannot afford per publisher; the relay instead caps the
   publisher's bitrate with one REMB a second (:func:`send_remb`).
3. ``RTCRtpSender._next_encoded_frame`` creates an encoder with ``get_encoder()`` unless its private
   ``__encoder`` is set. We set it to a packetizer, so an ``av.Packet`` is packed and no encoder (not
   even Opus's, whose constructor opens a libopus context) is ever built (:func:`pack_without_encoder`).
4. A subscriber's PLI/FIR ends in ``RTCRtpSender._send_keyframe``, which only flags the encoder we
   do not have; we catch it (:func:`on_keyframe_request`) and ask the publisher with
   ``RTCRtpReceiver._send_rtcp_pli`` (:func:`send_pli`); REMB goes out through
   ``RTCRtpReceiver._send_rtcp`` from its ``__rtcp_ssrc``.
5. ``RTCRtpSender._run_rtp`` builds, stamps and serializes every RTP packet from scratch (two
   ``clock.current_ntp_time()`` calls, a fresh ``HeaderExtensions``, the extensions re-encoded). A
   frame's packets differ only in sequence number, marker and payload, so :func:`lean_rtp_loop`
   installs, per subscriber sender, the same loop stamping the time and serializing the header once
   per frame. It keeps what aiortc's loop does for RTCP SR, NACK/RTX and stats: the sequence
   numbers, ``__rtp_history``, ``__ntp_timestamp``/``__rtp_timestamp``, ``__octet_count`` and
   ``__packet_count``, and the negotiated header extensions (``__rtp_header_extensions_map``).
6. Even lean, a sender's loop costs a task wake-up per frame and, per packet, a chain of awaits
   (``RTCDtlsTransport._send_rtp`` -> ``RTCIceTransport._send`` -> ``Connection.sendto`` ->
   ``StunProtocol.send_data``) ending in one ``transport.sendto``. :func:`direct_rtp_loop` lets
   the relay write a subscriber's packets itself, synchronously, while its source fans a frame out:
   :class:`DirectPath` holds the end of that chain (the DTLS transport's ``_tx_srtp`` session, the
   nominated pair's datagram transport and address) and opens the relay's *writer* on it
   (``relay.wire``: compiled from ``relay/_wire.c``, or its Python twin). The sender's
   ``__rtp_history`` becomes a :class:`RawHistory` that asks the writer for a packet only when a NACK
   does, and the sender's and transport's counters are read from the writer (:class:`CountedSender`,
   :class:`CountedDtlsTransport`). aiortc still owns the sender's other RTCP (NACK, PLI, RR, BYE), the
   negotiation and the teardown. Sender reports go out at libwebrtc's pace, audio every 5 s and video every
   1 s (:func:`report_every`): aiortc's loop sends them until a writer takes over, which then sends them
   with its frames (:func:`report_handles`) while the loop only waits to send the BYE.
   The packets of a frame are SRTP-protected in place, side by side in one buffer, through libsrtp's
   ``srtp_protect`` (the compiled writer calls it through the pointer :func:`srtp_handles` takes from
   pylibsrtp's binding; the Python writer through the binding, :class:`SrtpWire`), and written to a
   duplicate of the pair's socket: a run of equal-sized packets goes out as one message with UDP
   generic segmentation offload (``UDP_SEGMENT``, Linux >= 4.18) where the kernel accepts it.
7. aioice checks consent freshness every 5 s and gives up after 6 failures (~30 s). Billing needs a
   dead peer noticed in seconds, so :func:`watch_consent` installs a per-connection check with our
   own interval, reporting lost and regained consent; each check is made from the bytes (relay/stun.py)
   where the connection receives inline, and its answer recognised there.
8. asyncio's datagram transport reads one datagram per wake-up of the loop; a publisher's sockets are
   read until empty instead (:func:`drain_datagrams`), so that an overloaded loop never drops the
   publisher's media and consent answers in the kernel (see relay/overload.py).
9. aioice puts each datagram it does not answer itself on a queue that the DTLS transport's task reads;
   :func:`receive_inline` handles SRTP and SRTCP as the datagram arrives instead (:func:`run_eagerly`), answers
   consent checks on the nominated pair there too (relay/stun.py), and
   :func:`narrow_tx_window` gives the outbound SRTP session a 64-packet replay window (aiortc: 1024), which
   libsrtp shifts at every packet the writers protect.
10. The metrics' loss and RTT come from the receiver reports each sender keeps (:func:`reported_reception`),
    not from ``getStats``, which builds the transport's stats in a task per sender for every poll.

Packetization reuses aiortc's codec packetizers (:func:`vp8_payloads`, :func:`h264_payloads`).
``tests/relay/test_aiortc_hooks.py`` fingerprints every hooked method: an aiortc upgrade that moves
any of them fails that test loudly, before it silently breaks forwarding.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import random
import socket
import struct
import time
import traceback
import types
from asyncio.selector_events import _SelectorDatagramTransport  # type: ignore[attr-defined]
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aioice import Connection, stun
from aioice.candidate import candidate_priority
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, clock
from aiortc.codecs import depayload
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtcrtpsender import RTP_HISTORY_SIZE, random_sequence_number
from aiortc.rtcrtpsender import logger as sender_logger
from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
)
from aiortc.stats import RTCRemoteInboundRtpStreamStats
from aiortc.utils import random32, uint32_add
from pylibsrtp import ERRORS as SRTP_ERRORS
from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy
from pylibsrtp import Session as SrtpSession
from pylibsrtp._binding import ffi as srtp_ffi
from pylibsrtp._binding import lib as srtp_lib

from relay.receive import rtp_reader, vp8_depayload
from relay.stun import answer_binding, binding_request, is_binding_success

logger = logging.getLogger(__name__)

#: The first 4 bytes of an RTP header: V/P/X/CC, M/PT, sequence number.
_RTP_HEAD = struct.Struct("!BBH")

#: The aiortc/aioice/pylibsrtp versions these hooks were written and tested against.
AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"
PYLIBSRTP_VERSION = "1.0.0"


class FrameAssembler(Protocol):
    """What the receiver's ``__jitter_buffer`` slot must offer (``JitterBuffer.add``'s contract)."""

    def add(self, packet: RtpPacket) -> tuple[bool, None]: ...


class Packer(Protocol):
    """What the sender's ``__encoder`` slot must offer on the packet path (``Encoder.pack``)."""

    def pack(self, packet: Any) -> tuple[list[bytes], int]: ...


def take_encoded_frames(receiver: RTCRtpReceiver, assembler: FrameAssembler) -> None:
    """Route ``receiver``'s incoming RTP into ``assembler``; its decoder thread never starts.

    Call from the peer connection's ``track`` event, which fires before ``receive()``. The
    assembler must return ``(False, None)`` from ``add``: keyframe requests are the relay's (throttled)
    decision, and nothing must reach the decoder queue.
    """
    r: Any = receiver
    r._RTCRtpReceiver__jitter_buffer = assembler
    r._RTCRtpReceiver__remote_bitrate_estimator = None
    r._relay_assembler = assembler  # what _receive_rtp recognises (and feeds) once SRTP is handled inline
    r.receive = types.MethodType(_receive_without_decoder, receiver)


async def _receive_without_decoder(self: Any, parameters: RTCRtpReceiveParameters) -> None:
    # aiortc 1.16 RTCRtpReceiver.receive(), minus the decoder thread. Leaving
    # __decoder_thread None also keeps _handle_rtp_packet from queueing frames.
    if self._RTCRtpReceiver__started:
        return
    codecs = self._RTCRtpReceiver__codecs
    for codec in parameters.codecs:
        codecs[codec.payloadType] = codec
    rtx_ssrc = self._RTCRtpReceiver__rtx_ssrc
    for encoding in parameters.encodings:
        if encoding.rtx:
            rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
    self._RTCRtpReceiver__transport._register_rtp_receiver(self, parameters)
    self._RTCRtpReceiver__rtcp_task = asyncio.ensure_future(self._run_rtcp())
    self._RTCRtpReceiver__started = True


def depayloaded(packet: RtpPacket) -> bytes:
    """The codec payload ``_handle_rtp_packet`` extracted from ``packet`` (its private ``_data``)."""
    data: bytes = getattr(packet, "_data", b"")
    return data


def decoder_thread_started(receiver: RTCRtpReceiver) -> bool:
    """Whether aiortc started a decoder thread for ``receiver`` (for tests and assertions)."""
    return getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is not None


def pack_without_encoder(sender: RTCRtpSender, packer: Packer) -> None:
    """Make ``sender`` packetize through ``packer``; call before the sender starts."""
    s: Any = sender
    s._RTCRtpSender__encoder = packer


def sender_encoder(sender: RTCRtpSender) -> object | None:
    """The object in ``sender``'s encoder slot (our packer, or an aiortc encoder)."""
    return getattr(sender, "_RTCRtpSender__encoder", None)


def lean_rtp_loop(sender: RTCRtpSender) -> None:
    """Make ``sender`` send through :func:`_run_rtp_lean`; call before the sender starts."""
    s: Any = sender
    s._run_rtp = types.MethodType(_run_rtp_lean, sender)


async def _run_rtp_lean(self: Any, codec: RTCRtpCodecParameters) -> None:
    # aiortc 1.16 RTCRtpSender._run_rtp(), with the per-frame work done once per frame: one
    # clock reading (abs-send-time and the SR's NTP time; a frame's packets go out in one burst,
    # since _send_rtp never suspends), one HeaderExtensions shared by the frame's packets, and the
    # header serialized once, then patched with each packet's marker and sequence number.
    self._RTCRtpSender__log_debug("- RTP started")
    self._RTCRtpSender__rtp_started.set()

    history: dict[int, RtpPacket] = self._RTCRtpSender__rtp_history
    extensions_map = self._RTCRtpSender__rtp_header_extensions_map
    assert codec.payloadType is not None  # negotiated parameters always carry one
    payload_type = codec.payloadType
    sequence_number = random_sequence_number()
    timestamp_origin = random32()
    try:
        while True:
            if not self._RTCRtpSender__track:
                await asyncio.sleep(0.02)
                continue

            enc_frame = await self._next_encoded_frame(codec)
            if enc_frame is None:
                continue

            timestamp = uint32_add(timestamp_origin, enc_frame.timestamp)
            ntp_time = clock.current_ntp_time()
            extensions = HeaderExtensions()
            extensions.abs_send_time = (ntp_time >> 14) & 0x00FFFFFF
            extensions.mid = self._RTCRtpSender__mid
            if enc_frame.audio_level is not None:
                extensions.audio_level = (False, -enc_frame.audio_level)
            ssrc = self._ssrc
            payloads = enc_frame.payloads
            last = len(payloads) - 1
            debug = sender_logger.isEnabledFor(logging.DEBUG)
            send_rtp = self.transport._send_rtp
            header_byte0 = 0
            header_tail = b""
            for i, payload in enumerate(payloads):
                marker = 1 if i == last else 0
                packet = RtpPacket(payload_type, marker, sequence_number, timestamp, ssrc, payload)
                packet.extensions = extensions
                if i == 0:
                    # Byte 0 and bytes 4.. of the header (timestamp, SSRC, extensions) are the frame's.
                    packet_bytes = packet.serialize(extensions_map)
                    header_byte0 = packet_bytes[0]
                    header_tail = packet_bytes[4 : len(packet_bytes) - len(payload)]
                else:
                    packet_bytes = (
                        _RTP_HEAD.pack(header_byte0, (marker << 7) | payload_type, sequence_number)
                        + header_tail
                        + payload
                    )
                if debug:
                    self._RTCRtpSender__log_debug("> %s", packet)
                history[sequence_number % RTP_HISTORY_SIZE] = packet
                await send_rtp(packet_bytes)

                self._RTCRtpSender__ntp_timestamp = ntp_time
                self._RTCRtpSender__rtp_timestamp = timestamp
                self._RTCRtpSender__octet_count += len(payload)
                self._RTCRtpSender__packet_count += 1
                sequence_number = (sequence_number + 1) & 0xFFFF
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        self._RTCRtpSender__log_warning(traceback.format_exc())
    _rtp_finished(self)


def current_ntp_time() -> int:
    """aiortc's NTP clock (64-bit fixed point), as its senders stamp abs-send-time and SRs."""
    ntp: int = clock.current_ntp_time()
    return ntp


#: Linux's UDP generic segmentation offload socket option (``linux/udp.h``), and its limits.
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
_GSO_MAX_SEGMENTS = 64
_GSO_MAX_BYTES = 65000
_GSO_UNSUPPORTED = {errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP}
#: Room for a frame's protected packets; a larger frame is written in several rounds.
_WIRE_BUFFER = 96 * 1024
_SRTP_TRAILER = 16 + 128  # pylibsrtp's SRTP_MAX_TRAILER_LEN
_SEGMENT_OPTION = struct.Struct("=H")
_gso = [hasattr(socket, "SOL_UDP")]  # cleared, for the process, by the first refusal


def allow_gso(enabled: bool) -> bool:
    """Allow or forbid UDP GSO in :class:`SrtpWire` (tests); returns the previous setting."""
    previous = _gso[0]
    _gso[0] = enabled
    return previous


class SrtpWire:
    """Protects a frame's RTP packets in one buffer and writes them to one UDP peer.

    pylibsrtp's ``Session.protect`` allocates and copies per call; here each packet is protected in
    place in a buffer the wire owns, the packets lie side by side, and the kernel gets them in as
    few calls as it accepts (one ``sendmsg`` per run of equal-sized packets with GSO). It writes to
    a duplicate of the datagram transport's socket (closed by :meth:`close`), bypassing asyncio's
    send buffering on purpose: a subscriber whose socket is full loses the frame, it is not queued.

    :param fd: the UDP socket of the ICE pair's asyncio transport (duplicated; the wire closes its copy).
    """

    def __init__(self, session: SrtpSession, fd: int, addr: tuple[Any, ...]) -> None:
        self._session = session  # keeps the srtp_t alive
        self._srtp = session._srtp[0]  # type: ignore[attr-defined]
        self._length = srtp_ffi.new("int *")
        self._cdata = srtp_ffi.new("char[]", _WIRE_BUFFER)
        self._view = memoryview(srtp_ffi.buffer(self._cdata))
        self._addr = addr
        self._sock: socket.socket | None = socket.socket(fileno=os.dup(fd))
        self._sock.setblocking(False)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def write(self, packets: list[bytes], report: bytes | None = None) -> tuple[bool, int]:
        """Protect and send ``packets``, then the RTCP ``report`` if any.

        (False if the socket was full and the rest dropped, bytes protected).
        """
        view, cdata, length, srtp = self._view, self._cdata, self._length, self._srtp
        protect, protect_rtcp = srtp_lib.srtp_protect, srtp_lib.srtp_protect_rtcp
        runs: list[tuple[int, int]] = []
        offset = protected = 0
        sent = True
        last = len(packets)
        for i, data in enumerate(packets if report is None else [*packets, report]):
            size = len(data)
            if offset + size + _SRTP_TRAILER > _WIRE_BUFFER:
                sent = sent and self._send(runs)
                runs, offset = [], 0
            view[offset : offset + size] = data
            length[0] = size
            rtcp = i == last
            code = (protect_rtcp if rtcp else protect)(srtp, cdata + offset, length)
            if code:
                raise SrtpError(f"srtp_protect{'_rtcp' if rtcp else ''} failed ({code})")
            runs.append((offset, length[0]))
            offset += length[0]
            protected += length[0]
        return (sent and self._send(runs)), protected

    def _send(self, packets: list[tuple[int, int]]) -> bool:
        sock, view, addr = self._sock, self._view, self._addr
        if sock is None:
            return True  # closed
        try:
            for start, total, segment in segment_runs(packets, _gso[0]):
                if total == segment:
                    sock.sendto(view[start : start + total], addr)
                    continue
                option = [(socket.SOL_UDP, UDP_SEGMENT, _SEGMENT_OPTION.pack(segment))]
                try:
                    sock.sendmsg([view[start : start + total]], option, 0, addr)
                except OSError as exc:
                    if exc.errno not in _GSO_UNSUPPORTED:
                        raise
                    logger.info("UDP GSO refused (%s): sending packet by packet", exc)
                    _gso[0] = False
                    for offset, size in packets:
                        if start <= offset < start + total:
                            sock.sendto(view[offset : offset + size], addr)
        except BlockingIOError:
            return False
        except OSError as exc:
            # ICMP errors of a peer that went away (ECONNREFUSED...): consent checks will tell.
            logger.debug("RTP to %s not sent: %s", addr, exc)
        return True


def segment_runs(packets: list[tuple[int, int]], gso: bool) -> list[tuple[int, int, int]]:
    """Group contiguous ``(offset, size)`` packets into sends: ``(offset, total size, segment size)``.

    With GSO a send carries equal segments, of which only the last may be shorter, at most 64 of
    them and under 64 KB; without it, each packet is its own send.
    """
    runs: list[tuple[int, int, int]] = []
    count, i = len(packets), 0
    while i < count:
        start, size = packets[i]
        j, total = i + 1, size
        while gso and j < count and j - i < _GSO_MAX_SEGMENTS and total + packets[j][1] <= _GSO_MAX_BYTES:
            following = packets[j][1]
            if following > size:
                break
            total += following
            j += 1
            if following < size:
                break
        runs.append((start, total, size))
        i = j
    return runs


class RawHistory(dict[int, bytes]):
    """A sender's ``__rtp_history`` kept by the relay's writer; NACK handling gets an ``RtpPacket``.

    aiortc's ``_retransmit`` only calls ``get(sequence_number % RTP_HISTORY_SIZE)`` and reads the
    packet's fields, so the writer keeps references to the shared payloads and the packet is rebuilt
    and parsed only for the rare retransmission, instead of an ``RtpPacket`` built per packet sent.

    :param packet: the writer's ``packet(key)``: the cleartext packet last sent in that slot, or None.
    """

    def __init__(self, extensions_map: HeaderExtensionsMap, packet: Callable[[int], bytes | None]) -> None:
        super().__init__()
        self._extensions_map = extensions_map
        self._packet = packet

    def get(self, key: int, default: Any = None) -> Any:  # type: ignore[override]
        data = self._packet(key)
        return default if data is None else RtpPacket.parse(data, self._extensions_map)


def _sender_count(key: str, index: int) -> property:
    # The SR's NTP time and RTP timestamp are the writer's last frame's (index 0, 1); octets and
    # packets (2, 3) are what aiortc counted itself (nothing, on the direct path) plus the writer's.
    def get(self: Any) -> int:
        base: int = self.__dict__[key]
        writer = self.__dict__.get("_relay_writer")
        if writer is None:
            return base
        if index < 2:
            return int(writer.counts[index]) if writer.frames else base
        return base + int(writer.counts[index])

    def set(self: Any, value: int) -> None:
        writer = self.__dict__.get("_relay_writer")
        self.__dict__[key] = value if writer is None or index < 2 else value - int(writer.counts[index])

    return property(get, set)


def _sender_report(key: str, index: int) -> property:
    # __lsr / __lsr_time: the writer's (report[1], report[2]) once it has sent a report, else aiortc's.
    def get(self: Any) -> Any:
        writer = self.__dict__.get("_relay_writer")
        if writer is not None and writer.report[0]:
            return writer.report[index]
        return self.__dict__[key]

    def set(self: Any, value: Any) -> None:
        self.__dict__[key] = value

    return property(get, set)


def _transport_count(key: str, index: int) -> property:
    # Bytes and packets sent (the writers' counts 4 and 3) on top of what aiortc's _send_rtp and
    # _write_ssl count (RTCP, retransmissions, DTLS) in the same attribute.
    def get(self: Any) -> int:
        base: int = self.__dict__[key]
        return base + sum(int(w.counts[index]) for w in self.__dict__.get("_relay_writers", ()))

    def set(self: Any, value: int) -> None:
        self.__dict__[key] = value - sum(int(w.counts[index]) for w in self.__dict__.get("_relay_writers", ()))

    return property(get, set)


#: A sender whose SR and stats counters (``__ntp_timestamp``, ``__rtp_timestamp``,
#: ``__octet_count``, ``__packet_count``, read by aiortc's ``_run_rtcp`` and ``getStats``) come
#: from the relay's writer, read when aiortc needs them instead of stored per frame (storing them
#: was ~13% of the relay's CPU at 200 viewers). The instance's own values stay in its ``__dict__``.
CountedSender = type("RTCRtpSender", (RTCRtpSender,), {
    "_RTCRtpSender__ntp_timestamp": _sender_count("_RTCRtpSender__ntp_timestamp", 0),
    "_RTCRtpSender__rtp_timestamp": _sender_count("_RTCRtpSender__rtp_timestamp", 1),
    "_RTCRtpSender__octet_count": _sender_count("_RTCRtpSender__octet_count", 2),
    "_RTCRtpSender__packet_count": _sender_count("_RTCRtpSender__packet_count", 3),
    "_RTCRtpSender__lsr": _sender_report("_RTCRtpSender__lsr", 1),
    "_RTCRtpSender__lsr_time": _sender_report("_RTCRtpSender__lsr_time", 2),
    "__module__": __name__,
})
#: The same for the DTLS transport's ``__tx_bytes`` / ``__tx_packets`` (transport stats), shared
#: by the writers of every sender on the transport.
CountedDtlsTransport = type("RTCDtlsTransport", (RTCDtlsTransport,), {
    "_RTCDtlsTransport__tx_bytes": _transport_count("_RTCDtlsTransport__tx_bytes", 4),
    "_RTCDtlsTransport__tx_packets": _transport_count("_RTCDtlsTransport__tx_packets", 3),
    "__module__": __name__,
})


def count_from_writer(sender: RTCRtpSender, dtls: RTCDtlsTransport, writer: Any) -> None:
    """Make aiortc read ``sender``'s and ``dtls``'s send counters from ``writer`` (see CountedSender)."""
    s: Any = sender
    d: Any = dtls
    s.__dict__["_relay_writer"] = writer
    if type(sender) is RTCRtpSender:
        s.__class__ = CountedSender
    d.__dict__.setdefault("_relay_writers", []).append(writer)
    if type(dtls) is RTCDtlsTransport:
        d.__class__ = CountedDtlsTransport


#: A value that sets every bit abs-send-time can take, to find where it lies in a block.
_ABS_SEND_TIME_PROBE = 0xFFFFFF


def srtp_handles(session: SrtpSession) -> tuple[int, int]:
    """``srtp_protect``'s address and ``session``'s ``srtp_t``, as integers for the compiled writer.

    pylibsrtp's wheel bundles libsrtp and exposes it through cffi; a C extension built without
    libsrtp's headers calls it through these (``srtp_err_status_t srtp_protect(srtp_t, void *, int *)``,
    libsrtp 2). ``session`` must outlive every use: the writer keeps a reference to it.
    """
    protect = int(srtp_ffi.cast("uintptr_t", srtp_ffi.addressof(srtp_lib, "srtp_protect")))
    srtp = int(srtp_ffi.cast("uintptr_t", session._srtp[0]))  # type: ignore[attr-defined]
    return protect, srtp


def report_handles() -> int:
    """``srtp_protect_rtcp``'s address, for a writer that sends its sender's reports (see :func:`srtp_handles`)."""
    return int(srtp_ffi.cast("uintptr_t", srtp_ffi.addressof(srtp_lib, "srtp_protect_rtcp")))


def extension_block(extensions_map: HeaderExtensionsMap, mid: str | None, abs_send_time: int) -> bytes:
    """The header extension block (profile, length, elements) aiortc writes for a frame's packets."""
    values = HeaderExtensions()
    values.abs_send_time = abs_send_time
    values.mid = mid
    profile, value = extensions_map.set(values)
    if not value:
        return b""
    return struct.pack("!HH", profile, len(value) >> 2) + value


def extension_template(extensions_map: HeaderExtensionsMap, mid: str | None) -> tuple[bytes, int]:
    """The block with abs-send-time zeroed, and where its 3 bytes lie in it (-1: not negotiated)."""
    zero = extension_block(extensions_map, mid, 0)
    probe = extension_block(extensions_map, mid, _ABS_SEND_TIME_PROBE)
    differ = [i for i, (a, b) in enumerate(zip(zero, probe, strict=True)) if a != b]
    return zero, (differ[0] if differ else -1)


class DirectPath:
    """Where a started subscriber sender's RTP goes: SRTP session, socket, address, negotiation.

    Built by :func:`direct_rtp_loop` once the sender is started (DTLS is connected by then).
    :meth:`open_writer` gives the relay a writer (``relay.wire``) over all of it, which becomes the
    sender's RTP history for NACKs and bumps its SR and transport counters.
    """

    history_size = RTP_HISTORY_SIZE

    def __init__(self, sender: Any, dtls: RTCDtlsTransport, pair: Any, payload_type: int) -> None:
        self._sender = sender
        self._dtls: Any = dtls
        self.payload_type = payload_type
        self.ssrc: int = sender._ssrc
        self.mid: str | None = sender._RTCRtpSender__mid
        self.transport: Any = pair.protocol.transport
        self.addr: tuple[Any, ...] = tuple(pair.remote_addr)
        self._extensions_map: HeaderExtensionsMap = sender._RTCRtpSender__rtp_header_extensions_map
        self._writer: Any = None

    def usable(self) -> bool:
        """Whether packets can still go out (DTLS connected, sender enabled, socket open)."""
        return bool(
            self._dtls._state is DtlsState.CONNECTED
            and self._sender._enabled
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def extension_block(self, abs_send_time: int) -> bytes:
        """The header extension block (profile, length, elements) aiortc would write for a frame."""
        return extension_block(self._extensions_map, self.mid, abs_send_time)

    def open_writer(self, make: Callable[..., Any], sequence: int, origin: int) -> Any:
        """A writer (``make`` is ``relay.wire``'s PyWriter or the compiled Writer) for this path."""
        session = self._dtls._tx_srtp
        protect, srtp = srtp_handles(session)
        extensions, abs_send_time_at = extension_template(self._extensions_map, self.mid)
        interval = self._sender.__dict__.get("_relay_report_interval")  # set by report_every()
        cname: str | None = self._sender._RTCRtpSender__cname
        reports = {} if interval is None else {
            "protect_rtcp": report_handles(), "cname": (cname or "").encode()[:255],
            "report_interval_ms": max(1, round(interval * 1000)),
        }
        writer = make(
            self.transport.get_extra_info("socket").fileno(), self.addr, protect, srtp, session,
            self.ssrc, self.payload_type, sequence, origin, extensions, abs_send_time_at, self.history_size,
            **reports,
        )
        self._sender._RTCRtpSender__rtp_history = RawHistory(self._extensions_map, writer.packet)
        count_from_writer(self._sender, self._dtls, writer)
        if reports:
            reporting_from_writer(self._sender)
        self._writer = writer
        return writer


#: Runs the relay's side of a direct sender until the path ends (returns) or the sender stops.
DirectRunner = Callable[[DirectPath], Coroutine[Any, Any, None]]


def direct_path(sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> DirectPath | None:
    """The direct path of a started ``sender``, or None where only aiortc's chain can send.

    The chain ends in ``StunProtocol.send_data`` -> ``transport.sendto``; where that transport is
    asyncio's, over a UDP socket, the relay can write to the socket itself. A TURN-relayed pair
    (aioice's ``TurnTransport`` wraps each datagram for the TURN server) or any other protocol keeps
    aiortc's chain.
    """
    dtls = sender.transport
    pair = None
    if isinstance(dtls, RTCDtlsTransport) and dtls._tx_srtp is not None:  # type: ignore[attr-defined]
        connection: Any = dtls.transport._connection  # type: ignore[attr-defined]
        pair = connection._nominated.get(1)
    if pair is None or type(pair.protocol).send_data is not StunProtocol.send_data:
        return None
    udp = pair.protocol.transport.get_extra_info("socket")
    if udp is None or udp.type != socket.SOCK_DGRAM or codec.payloadType is None:
        return None
    return DirectPath(sender, dtls, pair, codec.payloadType)


def direct_rtp_loop(sender: RTCRtpSender, run: DirectRunner) -> None:
    """Make ``sender`` hand its :class:`DirectPath` to ``run`` instead of reading its track.

    Where no direct path exists, the sender runs :func:`_run_rtp_lean` on its track as before.
    Call before the sender starts.
    """
    s: Any = sender
    s._run_rtp = types.MethodType(
        lambda self, codec, _run=run: _run_rtp_direct(self, codec, _run), sender
    )


async def _run_rtp_direct(self: Any, codec: RTCRtpCodecParameters, run: DirectRunner) -> None:
    path = direct_path(self, codec)
    if path is None:
        await _run_rtp_lean(self, codec)
        return
    self._RTCRtpSender__log_debug("- RTP started (direct)")
    self._RTCRtpSender__rtp_started.set()
    try:
        await run(path)
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:
        self._RTCRtpSender__log_warning(traceback.format_exc())
    finally:
        path.close()
    _rtp_finished(self)


def _rtp_finished(self: Any) -> None:
    # The tail of aiortc's _run_rtp; __rtp_exited must be set, or RTCRtpSender.stop() hangs.
    if self._RTCRtpSender__track:
        self._RTCRtpSender__track.stop()
        self._RTCRtpSender__track = None
    self._RTCRtpSender__encoder = None
    self._RTCRtpSender__log_debug("- RTP finished")
    self._RTCRtpSender__rtp_exited.set()


#: Mean seconds between two RTCP sender reports of an audio sender, and of a video sender. aiortc sends
#: one every 0.5-1.5 s for every sender; libwebrtc, which browsers run, reports audio every 5 s and video
#: every 1 s. Built in Python, an SR and its SDES cost ~0.1 ms per subscriber; the writers build them in C.
AUDIO_SR_INTERVAL = 5.0
VIDEO_SR_INTERVAL = 1.0


def report_every(sender: RTCRtpSender, interval: float) -> None:
    """Make ``sender`` send its RTCP SR + SDES every ``interval`` s on average (aiortc: 1 s); before it starts.

    The writer of a direct path (:meth:`DirectPath.open_writer`) takes the interval and the reports over.
    """
    s: Any = sender
    s.__dict__["_relay_report_interval"] = interval
    s._run_rtcp = types.MethodType(lambda self, _i=interval: _run_rtcp_every(self, _i), sender)


def reporting_from_writer(sender: RTCRtpSender) -> None:
    """The sender's writer sends its reports from now on: its report loop stops, and reads LSR from the writer."""
    s: Any = sender
    s.__dict__["_relay_reports"] = True


async def _run_rtcp_every(self: Any, interval: float) -> None:
    # aiortc 1.16 RTCRtpSender._run_rtcp() with the mean interval as a parameter, and parked (only the BYE
    # is left for it to send) once the sender's writer sends the reports.
    self._RTCRtpSender__log_debug("- RTCP started")
    self._RTCRtpSender__rtcp_started.set()
    try:
        while True:
            await asyncio.sleep(interval * (0.5 + random.random()))
            if self.__dict__.get("_relay_reports"):
                await asyncio.get_running_loop().create_future()  # parked until the sender stops (cancelled)
            packets: list[Any] = [
                RtcpSrPacket(
                    ssrc=self._ssrc,
                    sender_info=RtcpSenderInfo(
                        ntp_timestamp=self._RTCRtpSender__ntp_timestamp,
                        rtp_timestamp=self._RTCRtpSender__rtp_timestamp,
                        packet_count=self._RTCRtpSender__packet_count & 0xFFFFFFFF,
                        octet_count=self._RTCRtpSender__octet_count & 0xFFFFFFFF,
                    ),
                )
            ]
            self._RTCRtpSender__lsr = (self._RTCRtpSender__ntp_timestamp >> 16) & 0xFFFFFFFF
            self._RTCRtpSender__lsr_time = time.time()
            cname = self._RTCRtpSender__cname
            if cname is not None:
                chunk = RtcpSourceInfo(ssrc=self._ssrc, items=[(1, cname.encode("utf8"))])
                packets.append(RtcpSdesPacket(chunks=[chunk]))
            await self._send_rtcp(packets)
    except asyncio.CancelledError:
        pass
    await self._send_rtcp([RtcpByePacket(sources=[self._ssrc])])
    self._RTCRtpSender__log_debug("- RTCP finished")
    self._RTCRtpSender__rtcp_exited.set()


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the remote end of ``sender`` sends PLI or FIR."""
    s: Any = sender
    s._send_keyframe = callback


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send an RTCP Picture Loss Indication for ``media_ssrc`` from ``receiver``."""
    r: Any = receiver
    await r._send_rtcp_pli(media_ssrc)


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, media_ssrcs: list[int]) -> None:
    """Send a Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb) of ``bitrate`` bps."""
    r: Any = receiver
    rtcp_ssrc = r._RTCRtpReceiver__rtcp_ssrc
    if rtcp_ssrc is not None:
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, media_ssrcs)
        )
        await r._send_rtcp(packet)


def vp8_payloads(frame: bytes, picture_id: int) -> list[bytes]:
    """RTP payloads (RFC 7741) for one encoded VP8 frame."""
    payloads: list[bytes] = Vp8Encoder._packetize(frame, picture_id)
    return payloads


def h264_payloads(access_unit: bytes) -> list[bytes]:
    """RTP payloads (RFC 6184, packetization-mode 1) for one Annex-B H.264 access unit."""
    nal_units = H264Encoder._split_bitstream(access_unit)
    payloads: list[bytes] = H264Encoder._packetize(nal_units)
    return payloads


#: Datagrams a publisher's socket yields per wake-up of the loop (asyncio's datagram transport reads one).
DRAIN_BURST = 256
#: Kernel receive buffer asked for a publisher's sockets (the kernel caps it at net.core.rmem_max).
PUBLISHER_RCVBUF = 4 << 20


def drain_datagrams(connections: Iterable[Connection], burst: int = DRAIN_BURST) -> int:
    """Read each of ``connections``' sockets until it is empty (at most ``burst``) whenever the loop finds it ready.

    asyncio's ``_SelectorDatagramTransport._read_ready`` reads one datagram per wake-up. A relay loop busy with
    hundreds of subscribers wakes rarely, so a publisher (100+ packets a second) overflowed its kernel buffer and
    lost media and, with it, its ICE consent answers: consent expired and the stream ended for everyone. A
    publisher's datagrams are all read at each wake-up instead (the same steps as asyncio's, in a loop), into a
    larger buffer. Call once candidates are gathered (after ``setLocalDescription``). Returns the sockets changed.
    """
    changed = 0
    for connection in connections:
        c: Any = connection
        for protocol in list(c._protocols):
            transport = getattr(protocol, "transport", None)
            if not isinstance(transport, _SelectorDatagramTransport):
                continue
            t: Any = transport
            with contextlib.suppress(OSError):
                t._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PUBLISHER_RCVBUF)
            t._loop._add_reader(t._sock_fd, functools.partial(_read_all, t, burst))
            changed += 1
    return changed


def _read_all(transport: Any, burst: int) -> None:
    # asyncio 3.11's _SelectorDatagramTransport._read_ready, repeated until the socket is empty.
    for _ in range(burst):
        if transport._conn_lost:
            return
        try:
            data, addr = transport._sock.recvfrom(transport.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            transport._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, "Fatal read error on datagram transport")
            return
        transport._protocol.datagram_received(data, addr)


def receive_inline(pc: RTCPeerConnection) -> int:
    """Hand ``pc``'s SRTP and SRTCP to aiortc's handlers as each datagram arrives, not through a queue and a task.

    aioice puts every datagram it does not answer itself on its connection's ``asyncio.Queue``; the DTLS
    transport's task wakes up for it, and only then unprotects and handles it. That hop (a queue, a future, a
    task step and a turn of the loop) was most of the Python cost of a publisher's 150 packets a second and of
    every viewer's RTCP. Once DTLS has keys, :func:`_inline_datagram` does the same steps as aiortc 1.16's
    ``RTCDtlsTransport._recv_next`` for SRTP and SRTCP, in the same order, synchronously; DTLS records (and so
    data channels), and anything that arrives while the queue still holds datagrams, take the queue as before,
    so nothing is reordered. Each socket's protocol also hands such a datagram (first byte 128-191, which no STUN
    message has) straight to the connection, where aioice first tries to parse it as STUN and catches the error,
    and answers a peer's consent check on the nominated pair itself (:func:`relay.stun.answer_binding`, ~12 us
    against aioice's ~60). Call once, after ``setLocalDescription``. Returns the connections changed.
    """
    changed = 0
    dtls_by_connection: dict[int, tuple[Connection, RTCDtlsTransport]] = {}
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        dtls_by_connection[id(dtls.transport._connection)] = (dtls.transport._connection, dtls)
    for connection, dtls in dtls_by_connection.values():
        c: Any = connection
        c.data_received = functools.partial(_inline_datagram, connection, dtls)
        c._relay_checks = {}  # the consent checks _LeanCheck sent, by transaction id, for _ahead_of_aioice
        for protocol in list(c._protocols):
            if type(protocol).datagram_received is StunProtocol.datagram_received:
                protocol.datagram_received = functools.partial(_ahead_of_aioice, protocol, protocol.datagram_received)
        changed += 1
    return changed


def _ahead_of_aioice(protocol: Any, stun_received: Callable[[bytes, tuple[Any, ...]], None], data: bytes,
                 addr: tuple[Any, ...]) -> None:
    # aioice 0.13 StunProtocol.datagram_received gives what does not parse as STUN to its connection; RTP and
    # RTCP (RFC 7983's 128-191) never parse, so they go there without the attempt. A consent check on the
    # connection's nominated pair is answered here (relay/stun.py); every other STUN message goes to aioice.
    if data and 127 < data[0] < 192:
        protocol.receiver.data_received(data, protocol.local_candidate.component)
        return
    if data[:2] == b"\x00\x01":
        response = _consent_answer(protocol, data, addr)
        if response is not None:
            protocol.transport.sendto(response, addr)
            return
    elif data[:2] == b"\x01\x01" and len(data) >= 20:
        check = protocol.receiver._relay_checks.get(data[8:20])
        if check is not None and check.answer(data):
            return
    stun_received(data, addr)


def _consent_answer(protocol: Any, data: bytes, addr: tuple[Any, ...]) -> bytes | None:
    # What aioice 0.13's Connection.request_received answers, once check_incoming has nothing left to do: the
    # request comes over the component's nominated pair (its candidates known, its state SUCCEEDED).
    connection = protocol.receiver
    pair = connection._nominated.get(protocol.local_candidate.component)
    if (pair is None or pair.protocol is not protocol or pair.remote_addr != (addr[0], addr[1])
            or connection._closing or not connection._early_checks_done):
        return None
    return answer_binding(data, (addr[0], addr[1]), local_ufrag=connection.local_username,
                          remote_ufrag=connection.remote_username,
                          password=connection.local_password.encode("utf8"), controlling=connection.ice_controlling)


def _inline_datagram(connection: Any, dtls: Any, data: bytes, component: int) -> None:
    # aiortc 1.16 RTCDtlsTransport._recv_next, its SRTP/SRTCP branch, run as the datagram arrives.
    if not data:
        return  # an empty datagram carries nothing (aiortc's data[0] would fail and end the DTLS transport)
    queue = connection._queue
    rx_srtp = dtls._rx_srtp
    if rx_srtp is None or not 127 < data[0] < 192 or queue.qsize() or dtls._state is not DtlsState.CONNECTED:
        queue.put_nowait((data, component))
        return
    dtls._RTCDtlsTransport__rx_bytes += len(data)
    dtls._RTCDtlsTransport__rx_packets += 1
    try:
        if is_rtcp(data):
            run_eagerly(dtls._handle_rtcp_data(rx_srtp.unprotect_rtcp(data)))
        else:
            _receive_rtp(dtls, rx_srtp, data)
    except SrtpError as exc:
        logger.debug("SRTP unprotect failed: %s", exc)
    except Exception:  # as run_eagerly: a handler's failure is logged, never raised into the socket's reader
        logger.warning("RTP/RTCP handler failed", exc_info=True)


def _receive_rtp(dtls: Any, rx_srtp: SrtpSession, data: bytes) -> None:
    # aiortc 1.16 RTCDtlsTransport._handle_rtp_data, then RTCRtpReceiver._handle_rtp_packet for a receiver whose
    # frames go to the relay (take_encoded_frames): the same steps, as plain calls instead of two coroutines, less
    # those that cannot apply: no header extensions parsed and no arrival time taken (no bitrate estimator reads
    # them), no decoder, an assembler that never asks for a PLI, no __active_ssrc kept (for
    # getSynchronizationSources, which the relay never calls). SRTP and the header in one call (relay/receive.py).
    # Retransmissions (RTX) and any other receiver take aiortc's coroutine.
    reader = getattr(dtls, "_relay_reader", None)
    if reader is None or reader[0] is not rx_srtp:
        reader = dtls._relay_reader = (rx_srtp, rtp_reader(rx_srtp, unprotect_handles(rx_srtp)))
    fields = reader[1](data)
    if fields is None:
        return  # not RTP (aiortc: "x RTP parsing failed")
    if isinstance(fields, int):
        raise SrtpError(SRTP_ERRORS[fields] if 0 <= fields < len(SRTP_ERRORS) else f"status {fields}")
    payload_type, marker, sequence_number, timestamp, ssrc, payload, padding_size = fields
    packet = RtpPacket(payload_type=payload_type, marker=marker, sequence_number=sequence_number,
                       timestamp=timestamp, ssrc=ssrc, payload=payload)
    packet.padding_size = padding_size
    receiver = dtls._rtp_router.route_rtp(packet)
    if receiver is None:
        return
    assembler = getattr(receiver, "_relay_assembler", None)
    codec = receiver._RTCRtpReceiver__codecs.get(payload_type)
    name = codec.name if codec is not None else ""
    if assembler is None or codec is None or name.lower() == "rtx":
        run_eagerly(receiver._handle_rtp_packet(packet, arrival_time_ms=clock.current_ms()))
        return
    streams = receiver._RTCRtpReceiver__remote_streams
    stream = streams.get(ssrc)
    if stream is None:
        stream = streams[ssrc] = StreamStatistics(codec.clockRate)
    stream.add(packet)
    nack = receiver._RTCRtpReceiver__nack_generator
    if nack is not None and nack.add(packet):
        run_eagerly(receiver._send_rtcp_nack(ssrc, sorted(nack.missing)))
    try:
        if not payload:
            packet._data = b""  # type: ignore[attr-defined]
        elif name == "VP8":
            packet._data = vp8_depayload(payload)  # type: ignore[attr-defined]
        else:
            packet._data = depayload(codec, payload)  # type: ignore[attr-defined]
    except ValueError:
        return
    assembler.add(packet)


def unprotect_handles(session: SrtpSession) -> tuple[int, int]:
    """``srtp_unprotect``'s address and ``session``'s ``srtp_t``, for relay/_wire.c's ``receive_rtp`` (see
    :func:`srtp_handles`: the same signature in libsrtp 2). ``session`` must outlive the reader."""
    unprotect = int(srtp_ffi.cast("uintptr_t", srtp_ffi.addressof(srtp_lib, "srtp_unprotect")))
    return unprotect, int(srtp_ffi.cast("uintptr_t", session._srtp[0]))  # type: ignore[attr-defined]


def run_eagerly(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` now, up to its first real suspension; a task finishes what remains.

    aiortc's RTP and RTCP handlers are coroutines that almost never wait (a NACK or PLI they send goes out
    through a chain of awaits ending in a synchronous ``sendto``). Python 3.12's eager tasks do this; on 3.11
    it is this step: the handler's work happens inside the datagram's callback, with no task, unless it awaits
    a future that is not done, which a task then waits for as the handler's own task would.
    """
    try:
        waiting = coro.send(None)
    except StopIteration:
        return
    except ConnectionError:  # a NACK or PLI answered while the transport closes
        return
    except Exception:  # as in RTCDtlsTransport.__run: a handler's failure is logged, not raised into aioice
        logger.warning("RTP/RTCP handler failed", exc_info=True)
        return
    task = asyncio.ensure_future(_finish(coro, waiting))
    _finishing.add(task)  # a task the loop holds only weakly
    task.add_done_callback(_finishing.discard)


_finishing: set[asyncio.Future[None]] = set()


async def _finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    try:
        while True:
            # What a task does with what a coroutine yields: a future to wait for, or None (a bare yield).
            if waiting is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([waiting])
            try:
                waiting = coro.send(None)
            except StopIteration:
                return
    except ConnectionError:
        pass
    except Exception:
        logger.warning("RTP/RTCP handler failed", exc_info=True)
    finally:
        coro.close()


#: Replay window of the relay's outbound SRTP sessions (aiortc: 1024). libsrtp shifts the whole window at every
#: packet it protects, and the relay protects each packet once per subscriber: 64 (RFC 3711's minimum) is 2
#: words to shift instead of 32. A sender never rejects its own packets (``allow_repeat_tx``), so nothing else changes.
TX_REPLAY_WINDOW = 64


def narrow_tx_window(pc: RTCPeerConnection) -> int:
    """Give ``pc``'s outbound SRTP sessions a :data:`TX_REPLAY_WINDOW` window; call before DTLS connects."""
    changed = 0
    for dtls in {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}.values():
        d: Any = dtls
        d._setup_srtp = types.MethodType(_setup_srtp_narrow, dtls)
        changed += 1
    return changed


def _setup_srtp_narrow(self: Any) -> None:
    # aiortc 1.16 RTCDtlsTransport._setup_srtp(), with the outbound session's window TX_REPLAY_WINDOW.
    openssl_profile = self._ssl.get_selected_srtp_profile()
    for srtp_profile in self._srtp_profiles:
        if srtp_profile.openssl_profile == openssl_profile:
            self._RTCDtlsTransport__log_debug("x DTLS handshake negotiated %s", srtp_profile.openssl_profile.decode())
            break
    else:
        self._RTCDtlsTransport__log_debug("x DTLS handshake failed (no SRTP profile negotiated)")
        self._set_state(DtlsState.FAILED)
        return
    view = self._ssl.export_keying_material(
        b"EXTRACTOR-dtls_srtp", 2 * (srtp_profile.key_length + srtp_profile.salt_length)
    )
    tx, rx = (1, 0) if self._role == "server" else (0, 1)
    rx_policy = Policy(key=srtp_profile.get_key_and_salt(view, rx), ssrc_type=Policy.SSRC_ANY_INBOUND,
                       srtp_profile=srtp_profile.libsrtp_profile)
    rx_policy.allow_repeat_tx = True
    rx_policy.window_size = 1024
    self._rx_srtp = SrtpSession(rx_policy)
    tx_policy = Policy(key=srtp_profile.get_key_and_salt(view, tx), ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                       srtp_profile=srtp_profile.libsrtp_profile)
    tx_policy.allow_repeat_tx = True
    tx_policy.window_size = TX_REPLAY_WINDOW
    self._tx_srtp = SrtpSession(tx_policy)


def reported_reception(sender: RTCRtpSender) -> list[RTCRemoteInboundRtpStreamStats]:
    """What the far end last reported receiving from ``sender`` (its RTCP receiver reports), read in place.

    ``RTCRtpSender.getStats`` returns these same entries, kept up to date by ``_handle_rtcp_packet``, but first
    builds an outbound entry and the transport's stats, in a task per sender (``RTCPeerConnection.getStats``
    gathers them): for a relay polling hundreds of viewers for its metrics, Python work per viewer that the
    metrics never read.
    """
    stats: dict[str, Any] = sender._RTCRtpSender__stats  # type: ignore[attr-defined]
    return [entry for entry in stats.values() if isinstance(entry, RTCRemoteInboundRtpStreamStats)]


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The aioice connections under ``pc`` (one when everything is bundled)."""
    transports: list[Any] = [t.receiver.transport.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport.transport)
    seen: dict[int, Connection] = {}
    for transport in transports:
        connection: Connection = transport._connection
        seen[id(connection)] = connection
    return list(seen.values())


@dataclass(frozen=True)
class ConsentPolicy:
    """How consent freshness (RFC 7675) is checked, and when the peer counts as gone.

    A binding request goes out every ``interval`` seconds (each waits up to ~1.5 s for its answer,
    with one retransmission, so a single slow answer is not a loss). Without any answer for
    ``lost_after`` seconds the peer is reported lost (media disconnected); after ``expire_after``
    seconds consent has expired and the ICE connection is closed, as RFC 7675 requires.
    """

    interval: float = 1.0
    lost_after: float = 2.0
    expire_after: float = 15.0


def watch_consent(
    connections: Iterable[Connection], policy: ConsentPolicy, on_change: Callable[[str], None]
) -> None:
    """Replace aioice's consent checks on ``connections`` with ones following ``policy``.

    ``on_change`` is called with "lost", "regained", or "expired" (just before the connection is
    closed). Call before ICE connects: aioice starts ``query_consent()`` at the end of ``connect()``.
    """
    for connection in connections:
        c: Any = connection
        c.query_consent = types.MethodType(
            lambda self, _p=policy, _cb=on_change: _query_consent(self, _p, _cb), connection
        )


async def _query_consent(self: Any, policy: ConsentPolicy, on_change: Callable[[str], None]) -> None:
    # aioice 0.13 Connection.query_consent(), reworked: checks overlap instead of waiting for each
    # other, and the verdict depends on the time since the last answer, not on a count of misses.
    loop = asyncio.get_running_loop()
    last_answer = loop.time()
    lost = False
    checks: set[asyncio.Task[None]] = set()

    lean: list[_LeanCheck] = []

    def answered() -> None:
        nonlocal last_answer
        last_answer = loop.time()

    async def check(pair: Any) -> None:
        request = self.build_request(pair, nominate=False)
        key = self.remote_password.encode("utf8")
        try:
            await pair.protocol.request(request, pair.remote_addr, integrity_key=key, retransmissions=1)
        except (stun.TransactionError, ConnectionError, OSError):
            return
        answered()

    try:
        while True:
            await asyncio.sleep(policy.interval * (0.8 + 0.4 * random.random()))
            pending = getattr(self, "_relay_checks", None)
            for pair in list(self._nominated.values()):
                if pending is not None and type(pair.protocol) is StunProtocol:
                    lean.append(_LeanCheck(self, pair, pending, answered))
                    continue
                task = asyncio.ensure_future(check(pair))
                checks.add(task)
                task.add_done_callback(checks.discard)
            lean[:] = [c for c in lean if c.waiting]
            silent = loop.time() - last_answer
            if silent >= policy.expire_after:
                logger.info("ICE consent expired: no answer for %.1f s", silent)
                on_change("expired")
                self._query_consent_task = None
                await self.close()
                return
            if silent >= policy.lost_after and not lost:
                lost = True
                on_change("lost")
            elif silent < policy.lost_after and lost:
                lost = False
                on_change("regained")
    finally:
        for task in checks:
            task.cancel()
        for lean_check in lean:
            lean_check.cancel()


#: aioice's first retransmission of a request (stun.RETRY_RTO), and the wait of a check with one retransmission.
CHECK_RETRANSMIT = 0.5
CHECK_TIMEOUT = 1.5


class _LeanCheck:
    """One consent check sent from the bytes (relay/stun.py), as aioice's ``protocol.request(...,
    retransmissions=1)`` sends it: once, again 0.5 s later, given up 1.5 s in; no future, task or ``Message``.

    Its answer is recognised by :func:`_ahead_of_aioice` through the connection's ``_relay_checks`` (which
    :func:`receive_inline` installs with it), which calls :meth:`answer`.
    """

    __slots__ = (
        "_addr",
        "_answered",
        "_key",
        "_pending",
        "_request",
        "_timers",
        "_transaction_id",
        "_transport",
    )

    def __init__(self, connection: Any, pair: Any, pending: dict[bytes, _LeanCheck],
                 answered: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        self._transaction_id = os.urandom(12)
        self._key = connection.remote_password.encode("utf8")
        self._request = binding_request(
            self._transaction_id, username=f"{connection.remote_username}:{connection.local_username}",
            password=self._key, priority=candidate_priority(pair.component, "prflx"),
            controlling=connection.ice_controlling, tie_breaker=connection._tie_breaker)
        self._transport = pair.protocol.transport
        self._addr = pair.remote_addr
        self._pending = pending
        self._answered = answered
        pending[self._transaction_id] = self
        self._send()
        self._timers = (loop.call_later(CHECK_RETRANSMIT, self._send), loop.call_later(CHECK_TIMEOUT, self.cancel))

    @property
    def waiting(self) -> bool:
        return self._transaction_id in self._pending

    def answer(self, response: bytes) -> bool:
        """Take ``response`` if it is this check's signed success; whether it was."""
        if not is_binding_success(response, self._transaction_id, self._key):
            return False
        self.cancel()
        self._answered()
        return True

    def cancel(self) -> None:
        self._pending.pop(self._transaction_id, None)
        for timer in self._timers:
            timer.cancel()

    def _send(self) -> None:
        if not self._transport.is_closing():
            self._transport.sendto(self._request, self._addr)
