"""A relay at its CPU limit refuses newcomers with relay_busy and still lets participants back in."""

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
    """Burns one core in a thread (process CPU time counts every thread) until stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="spinner")

    def _spin(self) -> None:
        while not self._stop.is_set():
            sum(range(10_000))

    def __enter__(self) -> Spinner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_busy_relay_refuses_new_participants_but_not_a_rejoin(
    endpoints: Callable[..., Endpoint],
) -> None:
    registry = CollectorRegistry()
    relay = Relay(ice_servers=[], registry=registry, max_cpu=0.7, cpu_sample_interval=0.1)
    try:
        first = endpoints("first", send=("audio",), receive=())
        await first.accept(await relay.publish_stream("s", "first", await first.offer()))
        load = relay.load
        assert load is not None
        with Spinner():
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
