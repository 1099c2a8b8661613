"""The per-packet path of a direct subscriber sender: RTP headers, SRTP and the socket, per frame.

A *writer* is one subscriber sender's end of the wire. For each frame it writes every packet's
12-byte RTP header (the subscriber's SSRC, payload type, sequence number and timestamp origin)
and the negotiated header-extension block (with the frame's abs-send-time) in front of the
payload the source built once for everyone, SRTP-protects the packets side by side in one buffer
and hands them to the kernel in as few calls as it accepts (equal-sized packets as one UDP GSO
send). A writer given ``protect_rtcp`` and ``report_interval_ms`` also sends the sender's RTCP sender
report (SR + SDES CNAME, as aiortc's ``RTCRtpSender._run_rtcp`` builds it) with the first frame and then
with a frame every 0.5-1.5 intervals, SRTCP-protected in the same send: no report task or timer per
subscriber. It keeps the last ``history_size`` packets for NACKs (as references to the shared payloads,
rebuilt only when asked for) and bumps aiortc's SR and transport counters as aiortc's own loop does.

There are two writers with one behaviour, checked byte for byte against each other by the tests:

- ``relay._wire.Writer``, compiled from ``relay/_wire.c`` by ``pip install`` (gcc and the Python
  headers, nothing else), with :func:`fanout` writing one frame to a whole list of writers in one
  call: the interpreter then does the same small amount of work per frame whatever the audience.
- :class:`PyWriter`, pure Python over pylibsrtp's binding (:class:`~relay.aiortc_hooks.SrtpWire`),
  used where the extension was not built (and by the tests, so the fallback stays correct).

:data:`COMPILED` is the compiled :class:`WireKind`, or None; :func:`wire_kind` picks one.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from relay.aiortc_hooks import SrtpWire, allow_gso

logger = logging.getLogger(__name__)

_HEAD = struct.Struct("!BBHII")
_REPORT = struct.Struct("!BBHIIIIII")


class FrameWriter(Protocol):
    """What both writers offer (see the module docstring)."""

    owner: Any

    @property
    def closed(self) -> bool: ...

    @property
    def frames(self) -> int: ...

    @property
    def counts(self) -> tuple[int, int, int, int, int]: ...

    @property
    def sequence(self) -> int: ...

    @property
    def report(self) -> tuple[int, int, float]: ...

    def send(self, payloads: list[bytes], pts: int, ntp_time: int) -> bool: ...

    def packet(self, key: int) -> bytes | None: ...

    def close(self) -> None: ...


class PyWriter:
    """The pure-Python writer; ``relay._wire.Writer`` is the same, compiled, with the same arguments.

    :param fd: the ICE pair's UDP socket (duplicated: the writer owns and closes its copy).
    :param addr: the remote address of the pair.
    :param protect, srtp: the ``srtp_protect`` function and the ``srtp_t`` session as integers (the
        compiled writer calls them; this one protects through ``keep``).
    :param keep: pylibsrtp's ``Session`` that owns that ``srtp_t``.
    :param extensions: the header-extension block as negotiated, with zeros where abs-send-time
        goes, ``abs_send_time_at`` bytes in (-1: not negotiated).
    :param protect_rtcp: ``srtp_protect_rtcp``'s address (0: the writer sends no sender reports).
    :param cname: the SDES CNAME sent with each report.
    :param report_interval_ms: the mean interval between two reports.

    :attr:`report` is (reports sent, the last one's LSR, the wall clock it was sent at): what aiortc keeps
    as ``__lsr`` and ``__lsr_time`` to measure the round trip from the receiver's reports.

    :attr:`counts` is what aiortc's own loop would have counted: (NTP time, RTP timestamp) of the
    last frame for the next SR, payload octets, packets and protected bytes sent
    (:mod:`relay.aiortc_hooks` shows them to aiortc's SR and stats code).
    """

    def __init__(
        self,
        fd: int,
        addr: tuple[Any, ...],
        protect: int,
        srtp: int,
        keep: Any,
        ssrc: int,
        payload_type: int,
        sequence: int,
        origin: int,
        extensions: bytes,
        abs_send_time_at: int = -1,
        history_size: int = 128,
        protect_rtcp: int = 0,
        cname: bytes = b"",
        report_interval_ms: int = 0,
    ) -> None:
        if len(cname) > 255 or (protect_rtcp and not report_interval_ms):
            raise ValueError("bad writer parameters")
        self.owner: Any = None
        self._wire = SrtpWire(keep, fd, addr)
        self._ssrc = ssrc
        self._payload_type = payload_type
        self._sequence = sequence & 0xFFFF
        self._origin = origin & 0xFFFFFFFF
        self._extensions = bytes(extensions)
        self._abs_send_time_at = abs_send_time_at
        self._history_size = history_size
        self._history: dict[int, tuple[bytes, int, int, int, bool]] = {}
        self._closed = False
        self.frames = 0
        self.counts: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
        self._reports_on = bool(protect_rtcp)
        self._cname = bytes(cname)
        self._report_interval_ms = report_interval_ms
        self._next_report = 0
        self._report_seed = ((ssrc & 0xFFFFFFFF) ^ 0x9E3779B9) or 1
        self.report: tuple[int, int, float] = (0, 0, 0.0)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sequence(self) -> int:
        return self._sequence

    def close(self) -> None:
        self._closed = True
        self._wire.close()

    def _header(self, marker: bool, sequence: int, timestamp: int, abs_send_time: int) -> bytes:
        block = self._extensions
        if block and self._abs_send_time_at >= 0:
            at = self._abs_send_time_at
            block = block[:at] + abs_send_time.to_bytes(3, "big") + block[at + 3 :]
        first = 0x90 if block else 0x80
        return _HEAD.pack(first, self._payload_type | (0x80 if marker else 0), sequence, timestamp, self._ssrc) + block

    def send(self, payloads: list[bytes], pts: int, ntp_time: int) -> bool:
        """Write one frame; False if the socket was full (the frame is dropped, not queued)."""
        if self._closed or not payloads:
            return True
        timestamp = (self._origin + pts) & 0xFFFFFFFF
        abs_send_time = (ntp_time >> 14) & 0x00FFFFFF
        sequence = self._sequence
        last = len(payloads) - 1
        packets: list[bytes] = []
        octets = 0
        for i, payload in enumerate(payloads):
            packets.append(self._header(i == last, sequence, timestamp, abs_send_time) + payload)
            self._history[sequence % self._history_size] = (payload, sequence, timestamp, abs_send_time, i == last)
            octets += len(payload)
            sequence = (sequence + 1) & 0xFFFF
        self._sequence = sequence
        self.frames += 1
        _, _, total_octets, total_packets, total_bytes = self.counts
        total_octets += octets
        total_packets += len(packets)
        report = None
        if self._reports_on and ntp_time >= self._next_report:
            report = sender_report(self._ssrc, ntp_time, timestamp, total_packets, total_octets, self._cname)
            reports, _, _ = self.report
            self.report = (reports + 1, (ntp_time >> 16) & 0xFFFFFFFF, time.time())
            self._next_report = ntp_time + self._report_delay()
        sent, wire_bytes = self._wire.write(packets, report)
        self.counts = (ntp_time, timestamp, total_octets, total_packets, total_bytes + wire_bytes)
        return sent

    def _report_delay(self) -> int:
        # relay/_wire.c's report_delay: the interval times 0.5..1.5, in NTP units, from xorshift32.
        x = self._report_seed
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._report_seed = x
        ms = self._report_interval_ms
        us = ms * 500 + ((ms * 1000 * (x >> 16)) >> 16)
        return (us << 32) // 1000000

    def packet(self, key: int) -> bytes | None:
        """The cleartext RTP packet sent last in history slot ``key`` (sequence % history size)."""
        entry = self._history.get(key)
        if entry is None:
            return None
        payload, sequence, timestamp, abs_send_time, marker = entry
        return self._header(marker, sequence, timestamp, abs_send_time) + payload


def sender_report(ssrc: int, ntp_time: int, timestamp: int, packets: int, octets: int, cname: bytes) -> bytes:
    """The RTCP compound aiortc's sender loop sends: an SR without report blocks, then SDES with the CNAME."""
    report = _REPORT.pack(0x80, 200, 6, ssrc, ntp_time >> 32, ntp_time & 0xFFFFFFFF, timestamp,
                          packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    if not cname:
        return report
    chunk = struct.pack("!IBB", ssrc, 1, len(cname)) + cname + b"\x00\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return report + struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


def py_fanout(writers: list[Any], payloads: list[bytes], pts: int, ntp_time: int) -> list[Any]:
    """Write one frame to each writer; the writers whose socket was full."""
    return [writer for writer in writers if not writer.send(payloads, pts, ntp_time)]


@dataclass(frozen=True, eq=False)
class WireKind:
    """One implementation of the wire: its writer class and its fan-out function."""

    name: str
    writer: Callable[..., FrameWriter]
    fanout: Callable[[list[Any], list[bytes], int, int], list[Any]]


PYTHON = WireKind("python", PyWriter, py_fanout)


def _compiled() -> WireKind | None:
    try:
        from relay import _wire  # type: ignore[attr-defined]  # optional at run time: built where gcc was
    except ImportError:
        return None
    return WireKind("compiled", _wire.Writer, _wire.fanout)


COMPILED = _compiled()


def wire_kind(name: str | None = None) -> WireKind:
    """The wire called ``name`` ("compiled" or "python"); None: compiled if it was built."""
    if name is None:
        if COMPILED is None:
            logger.warning("relay._wire is not built: the relay sends through the pure-Python path (slower)")
            return PYTHON
        return COMPILED
    if name == "python":
        return PYTHON
    if name == "compiled":
        if COMPILED is None:
            raise RuntimeError("relay._wire is not built (pip install -e . needs gcc and the Python headers)")
        return COMPILED
    raise ValueError(f"unknown wire {name!r}: 'compiled' or 'python'")


def set_gso(enabled: bool) -> tuple[bool, bool]:
    """Allow or forbid UDP GSO in both writers (tests); returns the previous (python, compiled) values."""
    previous_python = allow_gso(enabled)
    previous_compiled = previous_python
    if COMPILED is not None:
        from relay import _wire  # type: ignore[attr-defined]  # optional at run time: built where gcc was

        previous_compiled = bool(_wire.set_gso(enabled))
    return previous_python, previous_compiled
