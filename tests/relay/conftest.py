"""Fixtures for relay tests: a relay on loopback, endpoints that play browsers, an event log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from relay import Relay
from tests.relay.endpoints import Endpoint

EVENTS = (
    "participant-connected",
    "participant-disconnected",
    "participant-failed",
    "participant-closed",
    "track-published",
    "chat-message",
    "room-closed",
    "stream-closed",
)


class EventLog:
    """Records every relay event; tests wait on them with a bounded timeout."""

    def __init__(self, relay: Relay) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._changed = asyncio.Event()
        for name in EVENTS:
            relay.on(name, lambda *args, _name=name: self._record(_name, *args))

    def _record(self, name: str, *args: Any) -> None:
        self.events.append((name, *args))
        self._changed.set()

    def named(self, name: str, participant: str | None = None) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == name and (participant is None or e[2] == participant)]

    async def wait(
        self, name: str, participant: str | None = None, *, timeout: float = 10.0, nth: int = 1
    ) -> tuple[Any, ...]:
        """The ``nth`` ``name`` event (for ``participant``), waiting up to ``timeout`` seconds."""

        async def arrived() -> tuple[Any, ...]:
            while True:
                found = self.named(name, participant)
                if len(found) >= nth:
                    return found[nth - 1]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(arrived(), timeout)


@pytest.fixture
async def relay(request: pytest.FixtureRequest) -> AsyncIterator[Relay]:
    """A relay on loopback; parametrize indirectly with "queued" for aiortc's own send loop, "python"
    for the direct path's pure-Python writer ("direct": the compiled one where it was built)."""
    mode = getattr(request, "param", "direct")
    relay = Relay(ice_servers=[], registry=CollectorRegistry(), direct_send=mode != "queued",
                  wire="python" if mode == "python" else None)
    yield relay
    await relay.close()


@pytest.fixture
def events(relay: Relay) -> EventLog:
    return EventLog(relay)


@pytest.fixture
async def endpoints() -> AsyncIterator[Callable[..., Endpoint]]:
    made: list[Endpoint] = []

    def make(name: str, **kwargs: Any) -> Endpoint:
        endpoint = Endpoint(name, **kwargs)
        made.append(endpoint)
        return endpoint

    yield make
    for endpoint in made:
        await endpoint.close()


async def join(relay: Relay, room: str, endpoint: Endpoint) -> float:
    """Join ``endpoint`` to ``room`` and return the monotonic time its answer was applied."""
    answer = await relay.join_room(room, endpoint.name, await endpoint.offer())
    await endpoint.accept(answer)
    return time.monotonic()
