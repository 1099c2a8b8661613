"""How busy the relay's thread is, so that a saturated node refuses newcomers instead of failing everyone.

The relay forwards on one event loop, so one core is its ceiling (bench/fanout.py: ~300-400
audio+video viewers). Past it, frames back up in every socket: delivery falls for all viewers at
once and the publisher's own consent checks can time out, ending the stream. Refusing the next
participant with a clear error (``relay_busy``) keeps the ones already served.

What is measured is the CPU time of the event-loop thread alone (``time.thread_time()``, read by the sampler's
own callbacks, which run on that thread), not the process's: other threads of the process (argon2 hashing a
password uses four) may keep a core busy without slowing forwarding down, and counting them refused viewers
on an idle relay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class CpuLoad:
    """The event-loop thread's CPU seconds per second, sampled every ``interval`` seconds on that thread.

    :param limit: at or above this rate (1.0 = one core) the relay is :attr:`busy`.
    :param cpu_clock: CPU seconds used so far by the thread that calls it (:meth:`sample` runs on the loop).
    :param wall_clock: a monotonic clock.
    """

    def __init__(
        self,
        limit: float,
        *,
        interval: float = 1.0,
        cpu_clock: Callable[[], float] = time.thread_time,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.rate = 0.0
        self.samples = 0
        self._interval = interval
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._last = (wall_clock(), cpu_clock())
        self._handle: asyncio.TimerHandle | None = None

    @property
    def busy(self) -> bool:
        return self.rate >= self.limit

    def sample(self) -> float:
        """Update :attr:`rate` from the time since the previous sample; returns it."""
        now, cpu = self._wall_clock(), self._cpu_clock()
        last_now, last_cpu = self._last
        if now > last_now:
            self.rate = (cpu - last_cpu) / (now - last_now)
            self._last = (now, cpu)
            self.samples += 1
        return self.rate

    def start(self) -> None:
        """Sample every ``interval`` seconds on the running loop until :meth:`stop`."""
        if self._handle is None:
            self._last = (self._wall_clock(), self._cpu_clock())
            self._handle = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self.sample()
        self._handle = asyncio.get_running_loop().call_later(self._interval, self._tick)
