"""relay/receive.py reads a publisher's SRTP as aiortc does: the compiled reader, its Python twin and aiortc agree."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from aiortc.codecs.vpx import vp8_depayload as aiortcs_vp8_depayload
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from relay import aiortc_hooks
from relay.receive import Received, python_receive_rtp, rtp_reader, vp8_depayload
from relay.wire import COMPILED

KEY = os.urandom(30)  # AES_CM_128_HMAC_SHA1_80: a 16-byte key and a 14-byte salt


def sessions() -> tuple[Session, Session]:
    sender = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    receiver = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))
    return sender, receiver


def readers() -> list[tuple[str, Callable[[Session], Callable[[bytes], Received]]]]:
    found: list[tuple[str, Callable[[Session], Callable[[bytes], Received]]]] = [
        ("python", lambda session: rtp_reader(session, None))]
    if COMPILED is not None:
        found.append(("compiled", lambda session: rtp_reader(session, aiortc_hooks.unprotect_handles(session))))
    return found


def rtp(sequence: int, *, payload: bytes = b"\x90\x80\x12" + bytes(range(200)), csrc: int = 0,
        extensions: bool = True, padding: int = 0) -> bytes:
    packet = RtpPacket(payload_type=96, marker=sequence % 2, sequence_number=sequence, timestamp=90000 + sequence,
                       ssrc=0x1234ABCD, payload=payload)
    packet.csrc = list(range(1, csrc + 1))
    extensions_map = HeaderExtensionsMap()
    if extensions:
        extensions_map.configure(RTCRtpParameters(headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")]))
        packet.extensions.mid = "0"
    packet.padding_size = padding
    return bytes(packet.serialize(extensions_map))


def aiortcs_fields(data: bytes) -> tuple[int, int, int, int, int, bytes, int]:
    packet = RtpPacket.parse(data, HeaderExtensionsMap())
    return (packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc,
            packet.payload, packet.padding_size)


@pytest.mark.parametrize("name, reader", readers(), ids=[name for name, _ in readers()])
def test_a_reader_unprotects_and_reads_the_header_as_aiortc_parses_it(
        name: str, reader: Callable[[Session], Callable[[bytes], Received]]) -> None:
    sender, receiver = sessions()
    read = reader(receiver)
    for sequence, kwargs in enumerate([{}, {"csrc": 3}, {"extensions": False}, {"padding": 7},
                                       {"payload": b""}, {"csrc": 15, "padding": 1}], start=100):
        plain = rtp(sequence, **kwargs)  # type: ignore[arg-type]
        assert read(sender.protect(plain)) == aiortcs_fields(plain), kwargs


@pytest.mark.parametrize("name, reader", readers(), ids=[name for name, _ in readers()])
def test_a_reader_answers_libsrtps_status_for_what_does_not_unprotect_and_none_for_what_is_not_rtp(
        name: str, reader: Callable[[Session], Callable[[bytes], Received]]) -> None:
    sender, receiver = sessions()
    read = reader(receiver)
    protected = sender.protect(rtp(1))
    tampered = protected[:-1] + bytes([protected[-1] ^ 1])
    assert read(tampered) == 7  # srtp_err_status_auth_fail
    assert read(protected) is not None
    assert read(protected) == 9  # srtp_err_status_replay_fail: the same packet again
    assert read(b"\x80" * 11) is None  # shorter than a header
    bad_padding = bytearray(rtp(2))
    bad_padding[0] |= 0x20  # P set, the last byte (0) an impossible padding length
    bad_padding[-1] = 0
    assert read(sender.protect(bytes(bad_padding))) is None
    with pytest.raises(ValueError):
        RtpPacket.parse(bytes(bad_padding))


def test_the_compiled_reader_and_its_python_twin_agree_on_the_same_stream() -> None:
    if COMPILED is None:
        pytest.skip("relay._wire is not built")
    sender, compiled_receiver = sessions()
    _, python_receiver = sessions()
    compiled = rtp_reader(compiled_receiver, aiortc_hooks.unprotect_handles(compiled_receiver))
    for sequence in range(1000, 1200):
        protected = sender.protect(rtp(sequence, csrc=sequence % 3, padding=sequence % 5))
        assert compiled(protected) == python_receive_rtp(python_receiver, protected)


@given(st.binary(max_size=40))
def test_vp8_depayload_answers_as_aiortcs_errors_included(payload: bytes) -> None:
    try:
        expected: bytes | type[ValueError] = aiortcs_vp8_depayload(payload)
    except ValueError:
        expected = ValueError
    try:
        got: bytes | type[ValueError] = vp8_depayload(payload)
    except ValueError:
        got = ValueError
    assert got == expected
