"""A relay at its CPU limit refuses newcomers with relay_busy and still lets participants back in; the limit is
about the relay's own event-loop thread, so other threads of the process (argon2 hashing) do not trip it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from relay import Relay, RelayBusyError
from relay.load import CpuLoad
from tests.relay.endpoints import Endpoint


def test_cpu_load_is_cpu_seconds_per_wall_second_since_the_last_sample() -> None:
    clock = {"cpu": 10.0, "wall": 100.0}
    load = CpuLoad(0.9, cpu_clock=lambda: clock["cpu"], wall_clock=lambda: clock["wall"])
    assert not load.busy
    clock["cpu"], clock["wall"] = 10.5, 101.0
    assert load.sample() == pytest.approx(0.5) and not load.busy
    clock["cpu"], clock["wall"] = 12.4, 103.0
    assert load.sample() == pytest.approx(0.95) and load.busy
    assert load.sample() == pytest.approx(0.95), "no time passed: the last rate stands"


class Spinner:
    """Burns one core in another thread (as argon2 does while hashing a password) until stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="spinner")
        self.cpu = 0.0
        self.wall = 0.0

    def _spin(self) -> None:
        started, cpu = time.monotonic(), time.thread_time()
        while not self._stop.is_set():
            sum(range(10_000))
        self.cpu, self.wall = time.thread_time() - cpu, time.monotonic() - started

    def __enter__(self) -> Spinner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class LoopBurner:
    """Keeps the event-loop thread itself busy, in 20 ms slices so the loop still runs everything else."""

    def __init__(self) -> None:
        self._handle: asyncio.Handle | None = None

    def _burn(self) -> None:
        until = time.thread_time() + 0.02
        while time.thread_time() < until:
            sum(range(1_000))
        self._handle = asyncio.get_running_loop().call_soon(self._burn)

    def __enter__(self) -> LoopBurner:
        self._handle = asyncio.get_running_loop().call_soon(self._burn)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.cancel()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_busy_relay_refuses_new_participants_but_not_a_rejoin(
    endpoints: Callable[..., Endpoint],
) -> None:
    registry = CollectorRegistry()
    # 0.5 of a core, not more: the machine running the tests may give the loop thread little more than that.
    relay = Relay(ice_servers=[], registry=registry, max_cpu=0.5, cpu_sample_interval=0.1)
    try:
        first = endpoints("first", send=("audio",), receive=())
        await first.accept(await relay.publish_stream("s", "first", await first.offer()))
        load = relay.load
        assert load is not None
        with LoopBurner():
            await until(lambda: load.busy)
            newcomer = endpoints("newcomer", send=(), receive=("audio",))
            with pytest.raises(RelayBusyError) as refused:
                await relay.watch_stream("s", "newcomer", await newcomer.offer())
            assert refused.value.code == "relay_busy"
            again = endpoints("first-again", send=("audio",), receive=())
            await again.accept(await relay.publish_stream("s", "first", await again.offer()))
        assert registry.get_sample_value("soulseer_relay_refused_total", {"code": "relay_busy"}) == 1
        await until(lambda: not load.busy)
        later = endpoints("later", send=(), receive=("audio",))
        await later.accept(await relay.watch_stream("s", "later", await later.offer()))
    finally:
        await relay.close()


async def test_other_threads_of_the_process_do_not_count_as_the_relays_load() -> None:
    load = CpuLoad(0.5, interval=0.1)
    load.start()
    try:
        with Spinner() as spinner:
            await until(lambda: load.samples >= 5)
            rate = load.rate
    finally:
        load.stop()
    spun = spinner.cpu / spinner.wall
    assert spun > 0.2, f"the spinner got {spun:.2f} of a core: the machine is too busy to tell"
    assert rate < spun / 4, f"the loop thread measured {rate:.2f} of a core while another thread used {spun:.2f}"


async def test_a_relay_admits_viewers_while_another_thread_keeps_a_core_busy(
    endpoints: Callable[..., Endpoint],
) -> None:
    relay = Relay(ice_servers=[], registry=CollectorRegistry(), max_cpu=0.5, cpu_sample_interval=0.1)
    try:
        publisher = endpoints("publisher", send=("audio",), receive=())
        await publisher.accept(await relay.publish_stream("s", "publisher", await publisher.offer()))
        load = relay.load
        assert load is not None
        with Spinner():
            seen = load.samples
            await until(lambda: load.samples >= seen + 5)
            viewer = endpoints("viewer", send=(), receive=("audio",))
            await viewer.accept(await relay.watch_stream("s", "viewer", await viewer.offer()))
    finally:
        await relay.close()
