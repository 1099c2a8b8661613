"""Prometheus metrics on the injected registry, named soulseer_relay_*, never on the global one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from relay import Relay
from tests.relay.conftest import join
from tests.relay.endpoints import Endpoint


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    result = registry.get_sample_value(name, labels)
    assert result is not None, f"{name}{labels} not exported"
    return result


async def test_metrics_count_peers_rooms_forwarding_keyframes_and_rtcp_quality(
    endpoints: Callable[..., Endpoint]
) -> None:
    registry = CollectorRegistry()
    relay = Relay(ice_servers=[], registry=registry, stats_interval=1.0)
    try:
        reader, client = endpoints("reader"), endpoints("client")
        await join(relay, "room", reader)
        await join(relay, "room", client)
        await reader.wait_decoded("video", 30)
        await client.wait_decoded("audio", 30)
        assert value(registry, "soulseer_relay_peers") == 2
        assert value(registry, "soulseer_relay_rooms") == 1
        assert value(registry, "soulseer_relay_streams") == 0
        assert value(registry, "soulseer_relay_frames_forwarded_total", kind="video") >= 30
        assert value(registry, "soulseer_relay_packets_forwarded_total", kind="audio") >= 30
        assert value(registry, "soulseer_relay_bytes_forwarded_total", kind="video") > 1000
        assert value(registry, "soulseer_relay_keyframe_requests_total", reason="join") >= 1
        assert value(registry, "soulseer_relay_participant_events_total", event="connected") == 2

        async def rtt_reported() -> None:
            while registry.get_sample_value("soulseer_relay_rtt_seconds", {"direction": "down"}) is None:
                await asyncio.sleep(0.1)

        await asyncio.wait_for(rtt_reported(), 10)  # receiver reports arrive every 0.5-1.5 s
        assert 0 <= value(registry, "soulseer_relay_rtt_seconds", direction="down") < 0.5
        assert 0 <= value(registry, "soulseer_relay_rtcp_fraction_lost", direction="up") <= 1
    finally:
        await relay.close()
    exported = generate_latest(registry).decode()
    names = {line.split()[2] for line in exported.splitlines() if line.startswith("# TYPE")}
    assert names and all(name.startswith("soulseer_relay_") for name in names)
    assert b"soulseer_relay" not in generate_latest(REGISTRY)


def test_a_relay_without_a_registry_uses_a_private_one() -> None:
    Relay(ice_servers=[])
    Relay(ice_servers=[])  # a second one would clash on the global registry
    assert b"soulseer_relay" not in generate_latest(REGISTRY)
