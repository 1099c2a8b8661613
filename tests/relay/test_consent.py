"""Consent checks (RFC 7675) at two paces: readings' peers fast (billing trusts them), a stream's viewers slow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from relay import Relay
from relay.aiortc_hooks import ConsentPolicy, ice_connections
from tests.relay.endpoints import Endpoint


def count_binding_requests(endpoint: Endpoint) -> list[int]:
    """How many STUN binding requests the relay has sent ``endpoint`` from now on (a one-item counter)."""
    counter = [0]
    for connection in ice_connections(endpoint.pc):
        received = connection.request_received

        def counted(*args: Any, _received: Any = received) -> None:
            counter[0] += 1
            _received(*args)

        connection.request_received = counted  # type: ignore[method-assign]
    return counter


async def test_a_stream_viewer_is_checked_at_the_viewer_pace_and_its_publisher_at_the_billing_pace(
    endpoints: Callable[..., Endpoint]
) -> None:
    relay = Relay(ice_servers=[], registry=CollectorRegistry(), consent_interval=0.2,
                  viewer_consent=ConsentPolicy(interval=60.0, lost_after=120.0, expire_after=180.0))
    try:
        publisher = endpoints("reader", receive=(), data_channel=False)
        viewer = endpoints("viewer", send=(), data_channel=False, decode=False)
        await publisher.accept(await relay.publish_stream("live", "reader", await publisher.offer()))
        await viewer.accept(await relay.watch_stream("live", "viewer", await viewer.offer()))
        await viewer.wait_decoded("video", 1)
        to_publisher, to_viewer = count_binding_requests(publisher), count_binding_requests(viewer)

        async def publisher_checked_five_times() -> None:
            while to_publisher[0] < 5:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(publisher_checked_five_times(), 10)
        assert to_viewer[0] == 0, "the viewer is checked at its own, slower pace"
        assert relay.participant_state("viewer") == "connected"
    finally:
        await relay.close()
