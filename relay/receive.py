"""Reading a publisher's packets: SRTP unprotected, the RTP header parsed, a VP8 payload's descriptor stripped.

The relay receives ~150 packets a second per publisher and needs, of each, only the RTP header's fixed fields and
the payload: aiortc's ``RtpPacket.parse`` also parses every header extension into objects (7.7 us a packet) and
``vp8_depayload`` builds a descriptor object (3.6 us) only to slice past it. :func:`rtp_reader` unprotects and
parses in one call of ``relay/_wire.c``'s ``receive_rtp`` (with :func:`python_receive_rtp`, its twin over
pylibsrtp, where the extension was not built); :func:`vp8_depayload` answers as aiortc's does, byte for byte,
errors included (tests/relay/test_receive.py checks both against aiortc).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from pylibsrtp import ERRORS, Session
from pylibsrtp import Error as SrtpError

#: (payload_type, marker, sequence_number, timestamp, ssrc, payload, padding_size)
RtpFields = tuple[int, int, int, int, int, bytes, int]
#: What a reader answers: the fields; libsrtp's status if unprotecting failed; None if it is not RTP.
Received = RtpFields | int | None

_HEADER = struct.Struct("!BBHII")


def rtp_reader(session: Session, unprotect_handles: tuple[int, int] | None) -> Callable[[bytes], Received]:
    """A reader of ``session``'s SRTP datagrams: compiled when ``unprotect_handles`` (``srtp_unprotect``'s address
    and the session's ``srtp_t``, from relay.aiortc_hooks) are given and relay._wire was built."""
    if unprotect_handles is not None:
        try:
            from relay import _wire  # type: ignore[attr-defined]  # optional at run time: built where gcc was
        except ImportError:
            pass
        else:
            return functools.partial(_wire.receive_rtp, *unprotect_handles)
    return functools.partial(python_receive_rtp, session)


def python_receive_rtp(session: Session, datagram: bytes) -> Received:
    """relay/_wire.c's ``receive_rtp`` in Python: the checks of aiortc 1.16's ``RtpPacket.parse``, less the CSRC
    list and the header extensions, which nothing on the relay's receiving side reads."""
    if len(datagram) < 12:
        return None
    try:
        data = session.unprotect(datagram)
    except SrtpError as exc:
        return _status(exc)
    if len(data) < 12:
        return None
    first, marker_type, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    pos = 12 + 4 * (first & 0x0F)
    if len(data) < pos:
        return None
    if first & 0x10:
        if len(data) < pos + 4:
            return None
        pos += 4 + 4 * int.from_bytes(data[pos + 2:pos + 4], "big")
        if len(data) < pos:
            return None
    end = len(data)
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > len(data) - pos:
            return None
        end -= padding
    return marker_type & 0x7F, marker_type >> 7, sequence, timestamp, ssrc, data[pos:end], padding


def _status(exc: SrtpError) -> int:
    # pylibsrtp raises Error(ERRORS[status]): its message is libsrtp's status, by name.
    message = str(exc)
    return ERRORS.index(message) if message in ERRORS else 1


def vp8_depayload(payload: bytes) -> bytes:
    """The VP8 data after the RFC 7741 payload descriptor, as aiortc 1.16's ``vp8_depayload`` returns it (and
    raising ``ValueError`` where it raises)."""
    if not payload:
        raise ValueError("VPX descriptor is too short")
    pos = 1
    if payload[0] & 0x80:  # X: extended control bits
        if len(payload) < 2:
            raise ValueError("VPX descriptor has truncated extended bits")
        extended = payload[1]
        pos = 2
        if extended & 0x80:  # I: a PictureID, of 7 or 15 bits
            if len(payload) < pos + 1:
                raise ValueError("VPX descriptor has truncated PictureID")
            if payload[pos] & 0x80:
                if len(payload) < pos + 2:
                    raise ValueError("VPX descriptor has truncated long PictureID")
                pos += 2
            else:
                pos += 1
        if extended & 0x40:  # L: TL0PICIDX
            if len(payload) < pos + 1:
                raise ValueError("VPX descriptor has truncated TL0PICIDX")
            pos += 1
        if extended & 0x30:  # T or K: TID/Y/KEYIDX
            if len(payload) < pos + 1:
                raise ValueError("VPX descriptor has truncated T/K")
            pos += 1
    return payload[pos:]
