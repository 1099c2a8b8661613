"""A periodic job: a failed sweep is logged with the job's name, counted, and the loop sweeps again; stopping it
(or the app's cleanup) cancels its task and waits for it, so none is left running."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from api.core.periodic import Periodic

HOUR = 3600.0  # an interval no test waits out: the sweeps below run because the test wakes the job


def tasks_named(name: str) -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == name and not task.done()]


async def test_a_sweep_that_raises_is_logged_and_counted_and_the_loop_sweeps_again(
        caplog: pytest.LogCaptureFixture) -> None:
    outcomes: list[BaseException | None] = [OSError("database away"), ValueError("a bug"), None]
    done: list[str] = []

    async def sweep() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        done.append("swept")

    job = Periodic("test-job", sweep, interval=HOUR, expected=(OSError,))
    job.start()
    try:
        with caplog.at_level(logging.WARNING, logger="api.core.periodic"):
            for count in (1, 2, 3):
                job.wake()
                await job.wait_for_sweeps(count, timeout=5)
        assert job.running
    finally:
        await job.stop()
    assert (job.sweeps, job.failures, done) == (3, 2, ["swept"])
    outage, bug = [r for r in caplog.records if r.name == "api.core.periodic"]
    # The expected outage is a warning with its reason; the unexpected error keeps its traceback.
    assert (outage.levelname, outage.getMessage()) == ("WARNING", f"test-job failed; retrying in {HOUR:g} s")
    assert vars(outage)["job"] == "test-job" and "database away" in vars(outage)["reason"]
    assert outage.exc_info is None
    assert bug.levelname == "ERROR" and vars(bug)["job"] == "test-job" and vars(bug)["failures"] == 2
    assert bug.exc_info is not None and isinstance(bug.exc_info[1], ValueError)


async def test_the_first_sweep_waits_an_interval_unless_asked_to_run_at_start() -> None:
    swept = asyncio.Event()

    async def sweep() -> None:
        swept.set()

    later = Periodic("later-job", sweep, interval=HOUR)
    at_start = Periodic("at-start-job", sweep, interval=HOUR, at_start=True)
    later.start()
    try:
        at_start.start()
        await at_start.wait_for_sweeps(1, timeout=5)
        assert later.sweeps == 0
    finally:
        await at_start.stop()
        await later.stop()


async def test_stop_cancels_a_sweep_under_way_and_leaves_no_task() -> None:
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def sweep() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()  # a sweep that would never end by itself
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = Periodic("stuck-job", sweep, interval=HOUR, at_start=True)
    job.start()
    job.start()  # a second start is the same job, not a second task
    await asyncio.wait_for(entered.wait(), 5)
    assert len(tasks_named("stuck-job")) == 1
    await job.stop()
    assert cancelled.is_set() and not job.running
    assert tasks_named("stuck-job") == []
    assert job.failures == 0  # a cancellation is not a failure
    await job.stop()  # stopping twice is harmless


async def test_the_apps_cleanup_stops_the_job_it_started() -> None:
    async def sweep() -> None:
        pass

    job = Periodic("app-job", sweep, interval=HOUR, at_start=True)
    app = web.Application()
    app.cleanup_ctx.append(job.lifetime)
    runner = web.AppRunner(app)
    await runner.setup()  # the app's start-up
    try:
        await job.wait_for_sweeps(1, timeout=5)
        assert job.running and len(tasks_named("app-job")) == 1
    finally:
        await runner.cleanup()
    assert not job.running and tasks_named("app-job") == []
