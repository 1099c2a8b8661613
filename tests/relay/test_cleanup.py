"""Closing rooms, streams and peers releases every task, thread, socket and track."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time

import pytest
from aiortc import RTCPeerConnection

from relay import Relay
from relay.forwarder import Source, SubscriberTrack
from relay.peer import Peer
from tests.relay.endpoints import Endpoint

logger = logging.getLogger(__name__)

BATCHES = 10
PEERS_PER_BATCH = 20  # 1 publisher + 19 viewers: 200 relay peer connections in all


def resources(objects: bool = True) -> dict[str, int]:
    """Live tasks, threads, file descriptors and (with ``objects``) the relay's media objects.

    Object counts need log records not to keep references: run without ``--log-cli-level=INFO``,
    whose captured records hold aioice objects (and through them whole peer connections).
    """
    counts = {
        "tasks": len(asyncio.all_tasks()),
        # The event loop's default executor grows lazily (to a bounded size) with concurrent work:
        # its idle workers are not leaks. Every other thread is counted.
        "threads": sum(not t.name.startswith("asyncio_") for t in threading.enumerate()),
        "fds": len(os.listdir("/proc/self/fd")),
    }
    if objects:
        gc.collect()
        live = gc.get_objects()
        counts["peer connections"] = sum(isinstance(o, RTCPeerConnection) for o in live)
        counts["relay peers"] = sum(isinstance(o, Peer) for o in live)
        counts["subscriber tracks"] = sum(isinstance(o, SubscriberTrack) for o in live)
        counts["sources"] = sum(isinstance(o, Source) for o in live)
    return counts


async def batch(relay: Relay, n: int) -> dict[str, int]:
    """A stream with media flowing to every viewer, then closed from the relay side.

    Returns the resources in use while it was live."""
    stream = f"stream-{n}"
    publisher = Endpoint(f"pub-{n}", send=("audio", "video"), receive=(), data_channel=False)
    viewers = [
        Endpoint(f"v-{n}-{i}", send=(), receive=("audio", "video"), decode=False)
        for i in range(PEERS_PER_BATCH - 1)
    ]
    await publisher.accept(await relay.publish_stream(stream, publisher.name, await publisher.offer()))

    async def watch(viewer: Endpoint) -> None:
        await viewer.accept(await relay.watch_stream(stream, viewer.name, await viewer.offer()))
        await viewer.wait_decoded("video", 1, timeout=20)

    await asyncio.gather(*(watch(v) for v in viewers))
    live = resources(objects=n == 0)
    await relay.close_stream(stream)
    for endpoint in [publisher, *viewers]:
        await endpoint.close()
    return live


async def settled(baseline: dict[str, int], timeout: float) -> dict[str, int]:
    """Wait (bounded) until every resource count is back at or below the baseline."""
    deadline = time.monotonic() + timeout
    while True:
        now = resources()
        if all(now[k] <= baseline[k] for k in baseline) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_two_hundred_peer_connections_leave_no_tasks_threads_or_sockets_behind() -> None:
    relay = Relay(ice_servers=[], stats_interval=0)
    await batch(relay, -1)  # warm-up: lazily created executors and caches are not leaks
    baseline = await settled(resources(), 5)
    peak = dict(baseline)
    for n in range(BATCHES):
        live = await batch(relay, n)
        peak = {k: max(v, live.get(k, v)) for k, v in peak.items()}
    after = await settled(baseline, 10)
    census = relay.census()
    await relay.close()
    logger.info("baseline %s, peak %s, after %s", baseline, peak, after)
    assert peak["relay peers"] >= PEERS_PER_BATCH, "the resources were measured while peers were live"
    assert after == baseline, f"baseline {baseline}, after 200 peer connections {after} (peak {peak})"
    assert (census.peers, census.rooms, census.streams, census.participants) == (0, 0, 0, 0)
