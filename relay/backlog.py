"""Shedding a backlog: frames that reach the relay long after their media time are dropped.

When the relay falls behind (an overloaded core, a stalled event loop), a publisher's packets wait
in the kernel's socket buffer (aioice asks for 256 KB: two seconds of 1 Mbps video) and arrive in a
burst, late. Forwarding them would make every viewer's delay grow by the backlog (the measurements in docs/design.md
saw seconds). Instead the relay compares each frame's arrival with its RTP timestamp: the smallest
(arrival - media time) seen is the path's base delay, and a frame later than that by more than
``max_lag`` is stale. Stale frames are dropped; for video the stream then waits for a keyframe.

Dropping is for a backlog that can be caught up. If frames are still stale after ``max_lag`` seconds
of dropping, the delay has shifted for good (a clock step, a slower path): the guard takes the new
delay as its base instead of dropping forever.
"""

from __future__ import annotations

#: How fast the base delay may rise on its own, in seconds per second: far above any real clock
#: drift between publisher and relay (tens of ppm), far below a backlog's growth (up to 1 s/s).
DRIFT_ALLOWANCE = 0.001


class BacklogGuard:
    """Says whether a frame arrived too late behind its own media clock to be worth forwarding.

    :param clock_rate: the RTP clock rate of the media (90000 video, 48000 Opus).
    :param max_lag: how late (seconds) a frame may be behind the best path delay seen.
    """

    def __init__(self, clock_rate: int, max_lag: float) -> None:
        self._clock_rate = clock_rate
        self._max_lag = max_lag
        self._floor: float | None = None
        self._floor_at = 0.0
        self._stale_since: float | None = None
        self.stale = 0
        self.rebased = 0

    def reset(self) -> None:
        """A new feed: its RTP timestamps have nothing to do with the previous one's."""
        self._floor = None

    def is_stale(self, timestamp: int, arrival: float) -> bool:
        """Record a frame with RTP ``timestamp`` arriving at ``arrival``; True if it is stale."""
        offset = arrival - timestamp / self._clock_rate
        floor = self._floor
        if floor is None:
            floor = offset
        else:
            floor = min(offset, floor + DRIFT_ALLOWANCE * (arrival - self._floor_at))
        self._floor = floor
        self._floor_at = arrival
        if offset - floor <= self._max_lag:
            self._stale_since = None
            return False
        if self._stale_since is None:
            self._stale_since = arrival
        elif arrival - self._stale_since > self._max_lag:
            self._floor = offset  # not a backlog: a lasting change of delay
            self._stale_since = None
            self.rebased += 1
            return False
        self.stale += 1
        return True
