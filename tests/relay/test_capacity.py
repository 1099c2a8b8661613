"""The participant cap counts only connections that hold media; streams cannot take the room kept for readings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from relay import Relay, RelayFullError
from tests.relay.conftest import EventLog, join
from tests.relay.endpoints import Endpoint


async def test_peers_that_never_connect_give_their_slots_back_within_the_connect_timeout(
    endpoints: Callable[..., Endpoint],
) -> None:
    relay = Relay(ice_servers=[], registry=CollectorRegistry(), max_participants=3, connect_timeout=1.0)
    events = EventLog(relay)
    try:
        # Three viewers take an answer and never complete ICE (they never apply it).
        for n in range(3):
            stalled = endpoints(f"stalled-{n}", send=(), receive=("audio",))
            await relay.watch_stream("s", f"stalled-{n}", await stalled.offer())
        late = endpoints("late", send=(), receive=("audio",))
        with pytest.raises(RelayFullError):
            await relay.watch_stream("s", "late", await late.offer())
        for n in range(3):
            await events.wait("participant-failed", f"stalled-{n}", timeout=10.0)
        # Their slots are free again: a reading's two participants connect.
        a, b = endpoints("a", send=("audio",), receive=("audio",)), endpoints("b", send=("audio",), receive=("audio",))
        await join(relay, "room", a)
        await join(relay, "room", b)
        await a.wait_connected()
        await b.wait_connected()
    finally:
        await relay.close()


async def test_a_failed_participant_offering_again_needs_a_free_slot(endpoints: Callable[..., Endpoint]) -> None:
    relay = Relay(ice_servers=[], registry=CollectorRegistry(), max_participants=2, connect_timeout=1.0)
    events = EventLog(relay)
    try:
        stalled = endpoints("stalled", send=(), receive=("audio",))
        await relay.watch_stream("s", "stalled", await stalled.offer())
        await events.wait("participant-failed", "stalled")
        for name in ("v1", "v2"):
            viewer = endpoints(name, send=(), receive=("audio",))
            await viewer.accept(await relay.watch_stream("s", name, await viewer.offer()))
        again = endpoints("stalled-again", send=(), receive=("audio",))
        with pytest.raises(RelayFullError):
            await relay.watch_stream("s", "stalled", await again.offer())
    finally:
        await relay.close()


async def test_viewers_cannot_take_the_participants_kept_for_readings(endpoints: Callable[..., Endpoint]) -> None:
    registry = CollectorRegistry()
    relay = Relay(ice_servers=[], registry=registry, max_participants=4, reserved_for_rooms=2)
    try:
        publisher = endpoints("publisher", send=("audio",), receive=())
        await publisher.accept(await relay.publish_stream("s", "publisher", await publisher.offer()))
        viewer = endpoints("viewer", send=(), receive=("audio",))
        await viewer.accept(await relay.watch_stream("s", "viewer", await viewer.offer()))
        one_more = endpoints("one-more", send=(), receive=("audio",))
        with pytest.raises(RelayFullError) as refused:
            await relay.watch_stream("s", "one-more", await one_more.offer())
        assert refused.value.code == "relay_full"
        # The reading still gets both of its participants.
        client, reader = endpoints("client"), endpoints("reader")
        await join(relay, "reading", client)
        await join(relay, "reading", reader)
        # And a re-offer of a viewer already in is a re-join, not a newcomer.
        again = endpoints("viewer-again", send=(), receive=("audio",))
        await again.accept(await relay.watch_stream("s", "viewer", await again.offer()))
        # Readings may use the whole cap, past what streams may.
        fifth = endpoints("fifth")
        with pytest.raises(RelayFullError):
            await relay.join_room("reading-2", "fifth", await fifth.offer())
        assert registry.get_sample_value("soulseer_relay_refused_total", {"code": "relay_full"}) == 2
    finally:
        await relay.close()


def test_the_reserve_must_leave_room_for_streams() -> None:
    with pytest.raises(ValueError, match="reserved_for_rooms"):
        Relay(ice_servers=[], max_participants=4, reserved_for_rooms=4)
