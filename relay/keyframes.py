"""Keyframes: recognising them in encoded frames, and asking a publisher for one without a storm.

A subscriber can only start, or recover after a gap, at a keyframe. Keyframes are expensive for the
publisher: each costs several times a delta frame, and a burst of requests makes its rate control
starve every viewer (docs/design.md, relay notes: ~20 s of starvation after 17 keyframes in 5 s). So one
:class:`KeyframeRequester` per published video track coalesces every reason to ask (a subscriber
joined, a subscriber sent PLI/FIR, a subscriber's queue overflowed, the relay lost packets) into at
most one upstream request per ``interval``, and drops a pending request that a keyframe already
answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# VP8 keyframes carry this start code after the 3-byte frame tag (RFC 6386 section 9.1).
_VP8_START_CODE = b"\x9d\x01\x2a"
_H264_IDR = 5


def is_keyframe(codec: str, frame: bytes) -> bool:
    """Whether an encoded ``frame`` of ``codec`` can be decoded on its own.

    VP8: the frame tag's P bit is 0 (RFC 6386 section 9.1). H.264 (Annex-B, as aiortc depayloads
    it): the access unit holds an IDR slice. Audio codecs have no inter-frame dependency.
    """
    name = codec.upper()
    if name == "VP8":
        return len(frame) >= 6 and frame[0] & 0x01 == 0 and frame[3:6] == _VP8_START_CODE
    if name == "H264":
        return _H264_IDR in _h264_nal_types(frame)
    return True


def _h264_nal_types(access_unit: bytes) -> set[int]:
    types: set[int] = set()
    i = access_unit.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(access_unit):
        types.add(access_unit[i + 3] & 0x1F)
        i = access_unit.find(b"\x00\x00\x01", i + 3)
    return types


class KeyframeRequester:
    """Asks one publisher for keyframes on behalf of all its subscribers, at most once per interval.

    :param send: sends the upstream request (a PLI); called at most once per ``interval``.
    :param interval: the minimum time between two upstream requests, in seconds.
    :param label: identifies the published track in logs.
    """

    def __init__(
        self,
        send: Callable[[], None],
        *,
        interval: float,
        label: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._interval = interval
        self._label = label
        self._clock = clock
        self._last_sent: float | None = None
        self._last_keyframe: float | None = None
        self._pending_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.requests = 0
        self.sent = 0

    def request(self, reason: str = "") -> None:
        """Record that someone needs a keyframe; send now or when the interval allows."""
        self.requests += 1
        now = self._clock()
        if self._pending_since is None:
            self._pending_since = now
        if self._timer is not None:
            return  # coalesced into the request already scheduled
        wait = 0.0 if self._last_sent is None else self._last_sent + self._interval - now
        if wait <= 0:
            self._fire()
        else:
            logger.debug("keyframe request for %s (%s) deferred %.3f s", self._label, reason, wait)
            self._timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def keyframe_seen(self) -> None:
        """A keyframe went out: whoever was waiting is served; drop any pending request."""
        self._last_keyframe = self._clock()
        self._pending_since = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self._pending_since is None:
            return
        now = self._clock()
        self._last_sent = now
        self._pending_since = None
        self.sent += 1
        logger.debug("keyframe requested upstream for %s", self._label)
        self._send()
