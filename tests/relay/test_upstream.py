"""An edge relay pulling a stream once from its origin relay (relay.upstream), two real relays in one process."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from relay import Relay, RelayBusyError
from relay.aiortc_hooks import _read_all, ice_connections
from relay.load import CpuLoad
from tests.relay.endpoints import Endpoint
from tests.relay.test_overload import overload_loop
from tests.relay.test_stream import count_keyframe_requests, publish, publisher, viewer, watch

STREAM = "live-cascade"
PULLER = "stream:live-cascade:edge:edge-1"


@pytest.fixture
async def edge() -> AsyncIterator[Relay]:
    relay = Relay(ice_servers=[], registry=CollectorRegistry())
    yield relay
    await relay.close()


async def pull(origin: Relay, edge: Relay) -> None:
    offer = await edge.pull_stream(STREAM, PULLER)
    await edge.accept_pull(STREAM, await origin.watch_stream(STREAM, PULLER, offer))


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async def reached() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(reached(), timeout)


async def test_viewers_on_an_edge_decode_a_stream_the_origin_sends_once(
    relay: Relay, edge: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    origin = relay
    await publish(origin, STREAM, publisher(endpoints))
    await pull(origin, edge)
    viewers = [viewer(endpoints, f"edge-viewer-{i}") for i in range(3)]
    for v in viewers:
        await watch(edge, STREAM, v)
    for v in viewers:
        await v.wait_decoded("video", 10, timeout=15)
        await v.wait_decoded("audio", 10, timeout=15)
    # The origin sees one viewer however many the edge has; the edge holds all of them.
    assert origin.viewer_count(STREAM) == 1
    assert edge.viewer_count(STREAM) == 3
    assert edge.pulling(STREAM) and edge.pull_state(STREAM) == "connected"

    await edge.release_pull(STREAM)
    assert not edge.pulling(STREAM)
    # The origin's subscriber sees the hang-up (DTLS close) at once; its node then lets it go.
    await wait_until(lambda: origin.participant_state(PULLER) == "closed")


async def test_a_late_joiner_on_the_edge_gets_a_keyframe_through_the_hop(
    relay: Relay, edge: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    origin = relay
    reader = publisher(endpoints)
    await publish(origin, STREAM, reader)
    requests = count_keyframe_requests(reader)
    await pull(origin, edge)
    first = viewer(endpoints, "first")
    await watch(edge, STREAM, first)
    await first.wait_decoded("video", 5, timeout=15)
    # Wait past both hops' throttles so the joiner's request is not coalesced with the first one's.
    await asyncio.sleep(1.2)  # the keyframe throttle is time itself: 0.5 s per hop
    before = len(requests)
    late = viewer(endpoints, "late")
    await watch(edge, STREAM, late)
    await late.wait_decoded("video", 3, timeout=5)  # VP8 decodes only from a keyframe: one came through
    assert len(requests) > before


async def watching_through(origin: Relay, edge: Relay, endpoints: Callable[..., Endpoint]) -> tuple[Endpoint, Endpoint]:
    """"reader-1" publishing to the origin, the edge pulling, "watcher" on the edge decoding: (publisher, watcher)."""
    first = publisher(endpoints, "reader-1")
    await publish(origin, STREAM, first)
    await pull(origin, edge)
    watcher = viewer(endpoints, "watcher")
    await watch(edge, STREAM, watcher)
    await watcher.wait_decoded("video", 5, timeout=15)
    return first, watcher


async def test_the_edge_resumes_by_itself_when_the_publisher_drops_and_returns(
    relay: Relay, edge: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    origin = relay
    first, watcher = await watching_through(origin, edge, endpoints)
    await origin.leave("reader-1")  # the publisher's connection goes; the stream stays (a viewer: the pull)
    await first.close()
    decoded = watcher.decoded["video"]
    await publish(origin, STREAM, publisher(endpoints, "reader-1"))
    await watcher.wait_decoded("video", decoded + 10, timeout=15)
    assert edge.pull_state(STREAM) == "connected"


async def test_an_edge_that_becomes_the_origin_keeps_its_viewers_on_one_timeline(
    relay: Relay, edge: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    """The origin's node died and the stream's new origin is this edge: the reader publishes here, the pull goes,
    and the viewers here go on from the pull's sources (same connection, same SSRC, timestamps running on)."""
    origin = relay
    first, watcher = await watching_through(origin, edge, endpoints)
    ssrcs = watcher.video_ssrcs()
    assert len(ssrcs) == 1

    await origin.leave("reader-1")  # the origin's publisher is gone with its node
    await first.close()
    await edge.hand_over_pull(STREAM, "reader-2")
    assert not edge.pulling(STREAM)
    await publish(edge, STREAM, publisher(endpoints, "reader-2"))
    decoded = watcher.decoded["video"]
    await watcher.wait_decoded("video", decoded + 10, timeout=15)
    assert watcher.video_ssrcs() == ssrcs
    # aiortc's receiver unwraps RTP timestamps: a timeline that went back shows as a leap of ~2**32 forward.
    steps = [later - earlier for earlier, later in itertools.pairwise(watcher.video_pts)]
    assert all(0 < step < 10 * 90000 for step in steps), f"the outgoing timeline jumped: {max(steps)}"
    assert edge.viewer_count(STREAM) == 1


async def test_closing_the_edge_stream_closes_its_pull(
    relay: Relay, edge: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    origin = relay
    await publish(origin, STREAM, publisher(endpoints))
    await pull(origin, edge)
    await wait_until(lambda: edge.pull_state(STREAM) == "connected")
    await edge.close_stream(STREAM)
    assert not edge.pulling(STREAM)
    await wait_until(lambda: origin.participant_state(PULLER) == "closed")


async def test_an_origin_at_its_cpu_limit_refuses_viewers_but_lets_an_edge_pull(
    relay: Relay, edge: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    origin = relay
    await publish(origin, STREAM, publisher(endpoints))
    origin.load = CpuLoad(0.0)  # at its limit from now on: every newcomer is refused relay_busy
    with pytest.raises(RelayBusyError):
        await watch(origin, STREAM, viewer(endpoints, "refused"))
    offer = await edge.pull_stream(STREAM, PULLER)
    await edge.accept_pull(STREAM, await origin.watch_stream(STREAM, PULLER, offer, pull=True))
    served = viewer(endpoints, "served-by-the-edge")
    await watch(edge, STREAM, served)
    await served.wait_decoded("video", 5, timeout=15)


@pytest.mark.slow
async def test_an_origin_shedding_video_under_overload_never_sheds_an_edges_pull(
    edge: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    """The shedder sends the newest video subscribers keyframes only while the loop lags; an edge's pull, usually
    newer than the origin's own viewers, would then starve every viewer of the edge. It is never chosen."""
    # A small CPU budget, as in tests/relay/test_overload.py: the spinner's share of this shared machine counts as full.
    origin = Relay(ice_servers=[], registry=CollectorRegistry(), shed_lag=0.05, cpu_budget=0.125)
    stop = asyncio.Event()
    try:
        await publish(origin, STREAM, publisher(endpoints))
        local = viewer(endpoints, "origin-viewer")
        await watch(origin, STREAM, local)
        await local.wait_decoded("video", 5, timeout=15)
        offer = await edge.pull_stream(STREAM, PULLER)
        await edge.accept_pull(STREAM, await origin.watch_stream(STREAM, PULLER, offer, pull=True))
        watcher = viewer(endpoints, "edge-viewer")
        await watch(edge, STREAM, watcher)
        await watcher.wait_decoded("video", 5, timeout=15)

        spinner = asyncio.ensure_future(overload_loop(stop))
        await wait_until(lambda: origin.subscriber_tracks("origin-viewer")["video"].keyframes_only, timeout=20)
        assert not origin.subscriber_tracks(PULLER)["video"].keyframes_only
        stop.set()
        await spinner
    finally:
        stop.set()
        await origin.close()


def reads_until_empty(pc: Any) -> bool:
    """Whether every socket under ``pc`` is read by relay.aiortc_hooks' drain (asyncio's own reader takes one
    datagram per wake-up). Looks at the running loop's selector: a test may, the relay does not."""
    loop: Any = asyncio.get_running_loop()
    for connection in ice_connections(pc):
        for protocol in connection._protocols:
            handle = loop._selector.get_key(protocol.transport._sock_fd).data[0]
            if getattr(handle._callback, "func", None) is not _read_all:
                return False
    return True


async def test_both_ends_of_a_pull_read_their_sockets_until_empty(
    relay: Relay, edge: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    """Past its knee the origin's loop is a second late; a pull read one datagram per wake-up had its consent answers
    queued behind its RTCP until consent expired, and the edge's whole audience lost the stream
    (docs/benchmarks.md, the confined two-relay run). Both ends are read as a publisher's sockets are."""
    origin = relay
    await publish(origin, STREAM, publisher(endpoints))
    offer = await edge.pull_stream(STREAM, PULLER)
    await edge.accept_pull(STREAM, await origin.watch_stream(STREAM, PULLER, offer, pull=True))
    local = viewer(endpoints, "origin-viewer")
    await watch(origin, STREAM, local)
    assert reads_until_empty(origin._peer(PULLER).pc), "the origin reads its pull first"
    assert reads_until_empty(edge._upstreams[STREAM].pc), "the edge reads its upstream first"
    assert not reads_until_empty(origin._peer("origin-viewer").pc), "a plain viewer is read as asyncio reads"
