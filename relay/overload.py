"""Staying up past one core: how late the relay's event loop runs, who is admitted, and whose video is shed.

The relay forwards on one event loop. Past its capacity the old failure was total: every socket backed up at
once, the publisher's packets (and its ICE consent answers) were dropped in the kernel while the loop read one
datagram per wake-up, consent expired and every viewer lost the stream. Three defences, from first to last:

1. *The publisher first* (``relay.aiortc_hooks.drain_datagrams``): a publisher's sockets are read until empty at
   each wake-up, with a larger kernel buffer, so its media, RTCP and consent answers are never the ones dropped.
2. *Admission by loop lag* (:class:`LoopMonitor`): a timer every 50 ms measures how late the loop wakes it.
   While the recent median lag is at ``max_lag`` (and the loop's own thread is busy), a new participant is refused
   (``relay_busy``), before the lag would hurt the participants already served. CPU alone does not show this:
   the loop lags first, in bursts (a keyframe fanned out to everyone), while its average CPU still has room.
3. *Shedding* (:class:`Shedder`): if the lag still rises (the publisher's bitrate grows, a burst of keyframes),
   some video subscribers go *keyframe-only* for a while (they keep audio and see a still image at each
   keyframe) instead of everyone losing video together; when the lag is back down they return to full rate at
   the next keyframe, newest subscribers shed first and restored last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

logger = logging.getLogger(__name__)


class LoopMonitor:
    """How late the running event loop wakes a timer, and how much CPU its thread uses, over ``window`` seconds.

    A loop can be late because the relay has too much to do, or because the machine gives its thread no CPU
    (other processes). Only the first is the relay's to fix by refusing or shedding work, so the loop counts
    as :meth:`overloaded` at a lag only while its own thread also uses at least ``min_cpu`` of a core.

    :param interval: seconds between two probes (each a ``call_later``).
    :param window: seconds of probes kept.
    :param max_lag: the lag (seconds) at which the loop counts as :attr:`busy` (see :meth:`lag`).
    :param quantile: which quantile of the window's probes :meth:`lag` reports. The median: a loop past its
        capacity is late on most probes, while a burst of joins (DTLS handshakes) or a keyframe fanned out to
        everyone makes only a few probes late, and must not close the door on its own.
    :param full_cpu: CPU (of a core) at which the loop's thread has no room left, late or not yet: it counts as
        :attr:`busy` there too, since a newcomer would make it late (a median lag reacts a window later, and
        meanwhile a join storm gets in). None: only the lag counts.
    :param thread_clock: CPU seconds of the loop's thread (read on the loop).
    """

    def __init__(self, *, interval: float = 0.05, window: float = 2.0, max_lag: float = 0.03,
                 quantile: float = 0.5, min_cpu: float = 0.5, full_cpu: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 thread_clock: Callable[[], float] = time.thread_time) -> None:
        self.interval = interval
        self.max_lag = max_lag
        self.quantile = quantile
        self.min_cpu = min_cpu
        self.full_cpu = full_cpu
        self._clock = clock
        self._thread_clock = thread_clock
        self._samples: deque[tuple[float, float, float]] = deque()  # (when, lag, thread CPU seconds)
        self._window = window
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._handle is None:
            self._due = self._clock() + self.interval
            self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def record(self, lag: float, now: float, cpu: float) -> None:
        """Add one probe: its lag (seconds) observed at ``now``, the thread's CPU seconds then."""
        self._samples.append((now, lag, cpu))
        horizon = now - self._window
        while len(self._samples) > 2 and self._samples[0][0] < horizon:
            self._samples.popleft()

    def lag(self, quantile: float | None = None) -> float:
        """A quantile (default :attr:`quantile`) of the recent probes' lag, in seconds (0 with no probe yet)."""
        if not self._samples:
            return 0.0
        q = self.quantile if quantile is None else quantile
        ordered = sorted(lag for _, lag, _ in self._samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def cpu(self) -> float:
        """CPU seconds per second the loop's thread used over the window."""
        if len(self._samples) < 2:
            return 0.0
        (start, _, cpu_start), (end, _, cpu_end) = self._samples[0], self._samples[-1]
        return (cpu_end - cpu_start) / (end - start) if end > start else 0.0

    def overloaded(self, lag: float, min_cpu: float | None = None) -> bool:
        """Whether the loop is ``lag`` seconds late (see :meth:`lag`) because of its own work: its thread uses at
        least ``min_cpu`` (default :attr:`min_cpu`) of a core."""
        return self.lag() >= lag and self.cpu() >= (self.min_cpu if min_cpu is None else min_cpu)

    @property
    def busy(self) -> bool:
        """Whether a newcomer should be refused: the loop is late because of its own work, or its thread is full."""
        return self.overloaded(self.max_lag) or (self.full_cpu is not None and self.cpu() >= self.full_cpu)

    def _tick(self) -> None:
        now = self._clock()
        self.record(max(0.0, now - self._due), now, self._thread_clock())
        self._due = now + self.interval
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)


class Sheddable(Protocol):
    """A video subscriber the shedder can send keyframes only (``relay.forwarder.SubscriberTrack``)."""

    created_at: float

    @property
    def keyframes_only(self) -> bool: ...

    def shed(self) -> None: ...

    def restore(self) -> None: ...


class Shedder:
    """Sends some video subscribers keyframes only while the loop lags, and lets them back when it no longer does.

    Every ``interval`` seconds: once the loop has been overloaded at ``high`` lag or more for ``persist`` seconds
    running (a burst of joins passes sooner; a forwarding load past capacity does not), a further ``step`` of the
    full-rate subscribers (at least one; the newest first) is shed at each tick; at ``low`` or less, or with the
    loop's thread no longer busy, the subscribers shed for at least ``hold`` seconds are restored a ``step`` at a
    time (the oldest first), so the load comes back gradually. Shedding needs the loop's thread near a full core
    (``min_cpu``, 0.8): a relay late only because the machine is busy with other processes gains little from it.

    :param subscribers: the current video subscribers (called at each tick).
    """

    def __init__(self, monitor: LoopMonitor, subscribers: Callable[[], Iterable[Sheddable]], *,
                 interval: float = 0.5, high: float = 0.06, low: float = 0.015, step: float = 0.1,
                 hold: float = 5.0, persist: float = 2.0, min_cpu: float = 0.8,
                 clock: Callable[[], float] = time.monotonic, on_change: Callable[[int], None] | None = None,
                 joining: Callable[[], bool] = lambda: False) -> None:
        self._monitor = monitor
        self._joining = joining
        self._subscribers = subscribers
        self._interval = interval
        self.high, self.low = high, low
        self._step = step
        self._hold = hold
        self._persist = persist
        self.min_cpu = min_cpu
        self._overloaded_since: float | None = None
        self._clock = clock
        self._on_change = on_change
        self._shed_at: dict[Sheddable, float] = {}
        self._handle: asyncio.TimerHandle | None = None

    @property
    def shed_count(self) -> int:
        return len(self._shed_at)

    def start(self) -> None:
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def tick(self) -> None:
        """One decision (the timer calls it; tests may too)."""
        now = self._clock()
        current = list(self._subscribers())
        live = set(current)
        for gone in [s for s in self._shed_at if s not in live]:
            del self._shed_at[gone]
        lag = self._monitor.lag()
        changed = 0
        # While newcomers are still connecting, a late loop is their handshakes': admission refuses the next ones,
        # and shedding the audience already served would only cost it video (the lag ends with the joins).
        overloaded = self._monitor.overloaded(self.high, self.min_cpu) and not self._joining()
        if not overloaded:
            self._overloaded_since = None
        elif self._overloaded_since is None:
            self._overloaded_since = now
        if overloaded and self._overloaded_since is not None and now - self._overloaded_since >= self._persist:
            full = sorted((s for s in current if not s.keyframes_only), key=lambda s: s.created_at, reverse=True)
            for subscriber in full[: max(1, int(len(current) * self._step))]:
                subscriber.shed()
                self._shed_at[subscriber] = now
                changed += 1
            if changed:
                logger.warning("relay loop %.0f ms late: %d video subscribers now keyframes only (%d in all)",
                               lag * 1000, changed, len(self._shed_at))
        elif (lag <= self.low or self._monitor.cpu() < self.min_cpu) and self._shed_at:
            due = sorted((s for s, at in self._shed_at.items() if now - at >= self._hold), key=lambda s: s.created_at)
            for subscriber in due[: max(1, int(len(current) * self._step))]:
                subscriber.restore()
                del self._shed_at[subscriber]
                changed -= 1
            if changed:
                logger.info("relay loop %.0f ms late: %d video subscribers back to full rate (%d still shed)",
                            lag * 1000, -changed, len(self._shed_at))
        if changed and self._on_change is not None:
            self._on_change(changed)

    def _tick(self) -> None:
        try:
            self.tick()
        finally:
            self._handle = asyncio.get_running_loop().call_later(self._interval, self._tick)
