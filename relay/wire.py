"""The per-packet path of a direct subscriber sender: RTP headers, SRTP and the socket, per frame.

A *writer* is one subscriber sender's end of the wire. For each frame it writes every packet's
12-byte RTP header (the subscriber's SSRC, payload type, sequence number and timestamp origin)
and the negotiated header-extension block (with the frame's abs-send-time) in front of the
payload the source built once for everyone, SRTP-protects the packets side by side in one buffer
and hands them to the kernel in as few calls as it accepts (equal-sized packets as one UDP GSO
send). It keeps the last ``history_size`` packets for NACKs (as references to the shared payloads,
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from relay.aiortc_hooks import SrtpWire, allow_gso

logger = logging.getLogger(__name__)

_HEAD = struct.Struct("!BBHII")


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
    ) -> None:
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
        sent, wire_bytes = self._wire.write(packets)
        _, _, total_octets, total_packets, total_bytes = self.counts
        self.counts = (ntp_time, timestamp, total_octets + octets, total_packets + len(packets),
                       total_bytes + wire_bytes)
        return sent

    def packet(self, key: int) -> bytes | None:
        """The cleartext RTP packet sent last in history slot ``key`` (sequence % history size)."""
        entry = self._history.get(key)
        if entry is None:
            return None
        payload, sequence, timestamp, abs_send_time, marker = entry
        return self._header(marker, sequence, timestamp, abs_send_time) + payload


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
