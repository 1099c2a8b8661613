"""A periodic job of this node: one background task that runs a sweep every few seconds while the app runs.

The durable workers (the mail outbox, booking reminders, message refunds, money out, online alerts) keep their
work in database rows and claim it with ``FOR UPDATE SKIP LOCKED``, so the loop around each is the same: wait,
sweep, and when a sweep fails, say which job failed and why, count it, and sweep again at the next interval. A
failed sweep never ends the loop; stopping the app cancels the task and waits for it, so none is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Sweep = Callable[[], Awaitable[object]]


class Periodic:
    """A job that runs ``sweep`` every ``interval`` seconds in a task named ``name``, and at once on :meth:`wake`.

    The first sweep runs one interval after :meth:`start`, or at once with ``at_start``. An exception of
    ``expected`` (an outage, such as a database that does not answer) is logged as a warning with its reason; any
    other is logged with its traceback. Both count in :attr:`failures`, and :attr:`sweeps` counts every sweep
    done, failed ones included (tests wait on it with :meth:`wait_for_sweeps`, not on time).
    """

    def __init__(self, name: str, sweep: Sweep, *, interval: float, at_start: bool = False,
                 expected: tuple[type[Exception], ...] = ()) -> None:
        self.name = name
        self.interval = interval
        self.sweeps = 0
        self.failures = 0
        self._work = sweep
        self._at_start = at_start
        self._expected = expected
        self._wake = asyncio.Event()
        self._swept = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended (a sweep under way is cancelled with it)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: started with the app, stopped at its cleanup."""
        self.start()
        yield
        await self.stop()

    def wake(self) -> None:
        """Sweep now rather than at the end of the interval (after a commit that left work to do); a wake during
        a sweep makes another one follow it."""
        self._wake.set()

    async def wait_for_sweeps(self, count: int, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` sweeps have been done since the start."""
        async with self._swept:
            await asyncio.wait_for(self._swept.wait_for(lambda: self.sweeps >= count), timeout)

    async def _run(self) -> None:
        if not self._at_start:
            await self._pause()
        while True:
            self._wake.clear()
            await self._sweep_once()
            await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval)

    async def _sweep_once(self) -> None:
        try:
            await self._work()
        except self._expected as exc:
            self.failures += 1
            log.warning("%s failed; retrying in %g s", self.name, self.interval,
                        extra={"job": self.name, "failures": self.failures, "reason": repr(exc)[:500]})
        except Exception:
            self.failures += 1
            log.exception("%s failed; retrying in %g s", self.name, self.interval,
                          extra={"job": self.name, "failures": self.failures})
        async with self._swept:
            self.sweeps += 1
            self._swept.notify_all()
