"""Past its capacity the relay refuses newcomers by loop lag, sheds video before it collapses, and reads its
publishers first."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import av
import pytest
from prometheus_client import CollectorRegistry

from relay import Relay, RelayError
from relay.aiortc_hooks import drain_datagrams
from relay.forwarder import SubscriberTrack
from relay.overload import LoopMonitor, Shedder
from tests.relay.endpoints import Endpoint


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 0.0

    def __call__(self) -> float:
        return self.now


def feed(monitor: LoopMonitor, clock: Clock, lag: float, cpu_share: float, seconds: float = 2.0) -> None:
    """Probes every 25 ms for ``seconds``, each ``lag`` late, the thread using ``cpu_share`` of a core."""
    for _ in range(int(seconds / 0.025)):
        clock.now += 0.025
        clock.cpu += 0.025 * cpu_share
        monitor.record(lag, clock.now, clock.cpu)


def test_the_loop_is_overloaded_when_it_is_late_and_its_own_thread_is_busy() -> None:
    clock = Clock()
    monitor = LoopMonitor(max_lag=0.03, min_cpu=0.5, clock=clock)
    feed(monitor, clock, lag=0.002, cpu_share=0.95)
    assert not monitor.busy, "a busy thread with a punctual loop has room"
    feed(monitor, clock, lag=0.05, cpu_share=0.2)
    assert monitor.lag() == pytest.approx(0.05) and not monitor.busy, "late because the machine is, not the relay"
    feed(monitor, clock, lag=0.05, cpu_share=0.9)
    assert monitor.busy and monitor.cpu() == pytest.approx(0.9)
    feed(monitor, clock, lag=0.001, cpu_share=0.9)
    assert not monitor.busy, "only the last window counts"


def test_a_loop_whose_thread_is_full_is_busy_before_it_is_late() -> None:
    # A relay confined to 0.35 of a core (a container's CPU limit) with 0.95 of it used: one more viewer would make
    # it late, and a median lag would notice only a window later, after a join storm got in.
    clock = Clock()
    monitor = LoopMonitor(max_lag=0.03, min_cpu=0.5 * 0.35, full_cpu=0.95 * 0.35, clock=clock)
    feed(monitor, clock, lag=0.002, cpu_share=0.30)
    assert not monitor.busy
    feed(monitor, clock, lag=0.002, cpu_share=0.34)
    assert monitor.busy, "full, though punctual"


class FakeSubscriber:
    def __init__(self, created_at: float) -> None:
        self.created_at = created_at
        self.keyframes_only = False

    def shed(self) -> None:
        self.keyframes_only = True

    def restore(self) -> None:
        self.keyframes_only = False


def test_shedder_sends_the_newest_viewers_keyframes_only_while_overloaded_and_restores_the_oldest_first() -> None:
    clock = Clock()
    monitor = LoopMonitor(max_lag=0.03, min_cpu=0.5, clock=clock)
    viewers = [FakeSubscriber(created_at=float(i)) for i in range(20)]
    shedder = Shedder(monitor, lambda: viewers, high=0.06, low=0.015, step=0.1, hold=10.0, persist=2.0, clock=clock)
    feed(monitor, clock, lag=0.08, cpu_share=1.0)
    shedder.tick()
    assert shedder.shed_count == 0, "an overload shorter than `persist` (a burst of joins) sheds nothing"
    feed(monitor, clock, lag=0.08, cpu_share=1.0)
    shedder.tick()
    assert [v.created_at for v in viewers if v.keyframes_only] == [18.0, 19.0]
    shedder.tick()
    assert [v.created_at for v in viewers if v.keyframes_only] == [16.0, 17.0, 18.0, 19.0]
    feed(monitor, clock, lag=0.03, cpu_share=1.0)
    shedder.tick()
    assert shedder.shed_count == 4, "between the two thresholds nothing changes"
    feed(monitor, clock, lag=0.005, cpu_share=0.6, seconds=2.0)
    shedder.tick()
    assert shedder.shed_count == 4, "a shed viewer stays shed for the hold time"
    clock.now += 10.0
    feed(monitor, clock, lag=0.005, cpu_share=0.6)
    shedder.tick()
    assert [v.created_at for v in viewers if v.keyframes_only] == [18.0, 19.0], "the oldest come back first"
    shedder.tick()
    assert shedder.shed_count == 0 and not any(v.keyframes_only for v in viewers)


def test_a_late_loop_sheds_nothing_while_newcomers_are_connecting_and_sheds_if_it_stays_late_after() -> None:
    # A join storm on a relay near its budget (DTLS handshakes) makes the loop late for seconds: admission refuses
    # the next newcomers, but the audience already served keeps its video. A lag that outlasts the joins is load.
    clock = Clock()
    monitor = LoopMonitor(max_lag=0.03, min_cpu=0.5, clock=clock)
    viewers = [FakeSubscriber(created_at=float(i)) for i in range(20)]
    joining = [True]
    shedder = Shedder(monitor, lambda: viewers, high=0.06, low=0.015, step=0.1, hold=10.0, persist=2.0, clock=clock,
                      joining=lambda: joining[0])
    for _ in range(4):
        feed(monitor, clock, lag=0.08, cpu_share=1.0)
        shedder.tick()
    assert shedder.shed_count == 0, "8 s late, all of it while newcomers connected"
    joining[0] = False
    feed(monitor, clock, lag=0.08, cpu_share=1.0)
    shedder.tick()
    assert shedder.shed_count == 0, "`persist` counts from the end of the joins"
    feed(monitor, clock, lag=0.08, cpu_share=1.0)
    shedder.tick()
    assert shedder.shed_count == 2


def packet(pts: int) -> av.Packet:
    p = av.Packet(b"\x00" * 100)
    p.pts = pts
    return p


def test_a_shed_video_subscriber_gets_keyframes_only_and_resumes_at_the_next_keyframe_after_restore() -> None:
    track = SubscriberTrack("video", owner="v", capacity=100)
    track.push(packet(0), keyframe=True)
    track.push(packet(1), keyframe=False)
    track.shed()
    for i, keyframe in enumerate([False, False, True, False]):
        track.push(packet(2 + i), keyframe=keyframe)
    track.restore()
    assert track.waiting_for_keyframe, "the deltas since the last keyframe sent were skipped"
    track.push(packet(6), keyframe=False)
    track.push(packet(7), keyframe=True)
    track.push(packet(8), keyframe=False)
    assert [p.pts for p in track._queue] == [0, 1, 4, 7, 8]


async def test_a_publishers_socket_is_read_until_empty_at_each_wake_up() -> None:
    loop = asyncio.get_running_loop()
    counts: dict[str, int] = {}

    class Counting(asyncio.DatagramProtocol):
        def __init__(self, name: str) -> None:
            self.name = name
            counts[name] = 0

        def datagram_received(self, data: bytes, addr: Any) -> None:
            counts[self.name] += 1

    class Connection:  # what drain_datagrams reads of an aioice Connection: its protocols
        def __init__(self, protocol: asyncio.DatagramProtocol) -> None:
            self._protocols = [protocol]

    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    endpoints = {}
    for name in ("asyncio", "drained"):
        transport, protocol = await loop.create_datagram_endpoint(lambda n=name: Counting(n),
                                                                  local_addr=("127.0.0.1", 0))
        protocol.transport = transport  # as aioice's StunProtocol keeps it
        endpoints[name] = (transport, protocol)
    assert drain_datagrams([Connection(endpoints["drained"][1])]) == 1  # type: ignore[list-item]
    try:
        for transport, _ in endpoints.values():
            for i in range(100):
                sender.sendto(bytes([i]) * 200, transport.get_extra_info("sockname"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert counts["drained"] == 100, "every queued datagram is read in the first wake-up"
        assert counts["asyncio"] < 100, "asyncio's own transport reads one datagram per wake-up"
    finally:
        sender.close()
        for transport, _ in endpoints.values():
            transport.close()


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def overload_loop(until: asyncio.Event, busy: float = 0.15) -> None:
    """Keep the loop's thread busy (``busy`` s of CPU at a time), as a relay past its capacity would be."""
    while not until.is_set():
        spin(busy)
        await asyncio.sleep(0.005)


@pytest.mark.slow
async def test_newcomers_are_refused_while_the_loop_lags_and_the_publisher_and_viewer_stay_served(
    endpoints: Callable[..., Endpoint]
) -> None:
    registry = CollectorRegistry()
    # The spinner below gets whatever share of a core this shared machine leaves it: the relay is given a small CPU
    # budget (as in a container with a quota), so that share counts as all it has. The half-core floor itself is
    # covered by test_the_loop_is_overloaded_when_it_is_late_and_its_own_thread_is_busy.
    relay = Relay(ice_servers=[], registry=registry, max_loop_lag=0.03, shed_lag=0.05, cpu_budget=0.125)
    stop = asyncio.Event()
    try:
        publisher = endpoints("publisher", send=("video",), receive=(), data_channel=False)
        await publisher.accept(await relay.publish_stream("s", "publisher", await publisher.offer()))
        viewer = endpoints("viewer", send=(), receive=("video",), data_channel=False)
        await viewer.accept(await relay.watch_stream("s", "viewer", await viewer.offer()))
        await viewer.wait_decoded("video", 10)

        spinner = asyncio.ensure_future(overload_loop(stop))

        async def overloaded() -> None:
            while not relay.loop_monitor.busy:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(overloaded(), 10)
        late = endpoints("late", send=(), receive=("video",), data_channel=False)
        with pytest.raises(RelayError) as refused:
            await relay.watch_stream("s", "late", await late.offer())
        assert refused.value.code == "relay_busy"
        assert registry.get_sample_value("soulseer_relay_refused_total", {"code": "relay_busy"}) == 1

        async def shed() -> None:
            while not relay.subscriber_tracks("viewer")["video"].keyframes_only:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(shed(), 10)
        assert registry.get_sample_value("soulseer_relay_video_shed") == 1
        stop.set()
        await spinner
        assert relay.participant_state("publisher") == "connected", "the publisher outlived the overload"

        async def calm() -> None:
            while relay.loop_monitor.busy:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(calm(), 10)
        await late.accept(await relay.watch_stream("s", "late", await late.offer()))
        await late.wait_decoded("video", 10)
    finally:
        stop.set()
        await relay.close()
