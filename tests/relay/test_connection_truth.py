"""Billing trusts the relay's connection events: their order and timing are specified here."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from relay import Relay, RelayError
from tests.relay.conftest import EventLog, join
from tests.relay.endpoints import Endpoint

ROOT = Path(__file__).resolve().parents[2]
logger = logging.getLogger(__name__)


async def join_peer_process(relay: Relay, events: EventLog) -> asyncio.subprocess.Process:
    """Start a participant in its own process (tests/relay/peer_process.py), join it to "room" as
    "client" and wait until the relay reports it connected; the caller kills it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.relay.peer_process",
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        offer = json.loads(await asyncio.wait_for(child.stdout.readline(), 20))["offer"]
        answer = await relay.join_room("room", "client", offer)
        child.stdin.write((json.dumps({"answer": answer}) + "\n").encode())
        await child.stdin.drain()
        await events.wait("participant-connected", "client", timeout=15)
    except BaseException:
        child.kill()
        await child.wait()
        raise
    return child


async def test_connected_is_reported_once_dtls_is_up_and_closed_on_leave(
    relay: Relay, events: EventLog, endpoints: Callable[..., Endpoint]
) -> None:
    reader = endpoints("reader")
    answered = await join(relay, "room", reader)
    await reader.wait_connected()
    _, scope, participant, at = await events.wait("participant-connected", "reader")
    assert (scope, participant) == ("room", "reader")
    assert at >= answered - 0.5 and at <= time.monotonic()
    await relay.leave("reader")
    names = [e[0] for e in events.events if e[0].startswith("participant") and e[2] == "reader"]
    assert names == ["participant-connected", "participant-closed"]


@pytest.mark.slow
async def test_a_killed_participant_is_reported_disconnected_within_a_few_seconds_then_failed(
    endpoints: Callable[..., Endpoint]
) -> None:
    # Default consent timing (1 s checks, disconnected after 2 s without an answer); expiry
    # shortened from 15 s to 5 s so the test also sees "failed" and "closed" within its budget.
    relay = Relay(ice_servers=[], consent_expire_after=5)
    events = EventLog(relay)
    other = endpoints("reader")
    await join(relay, "room", other)
    child: asyncio.subprocess.Process | None = None
    try:
        child = await join_peer_process(relay, events)
        await other.wait_decoded("video", 10)  # media really flows from the child
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
        disconnected = await events.wait("participant-disconnected", "client", timeout=10)
        assert relay.participant_state("client") == "disconnected"
        assert relay.participant_state("reader") == "connected"
        failed = await events.wait("participant-failed", "client", timeout=15)
        closed = await events.wait("participant-closed", "client", timeout=5)
    finally:
        if child is not None and child.returncode is None:
            child.kill()
            await child.wait()
        await relay.close()
    detected = disconnected[3] - killed_at
    logger.info("killed participant: disconnected after %.2f s, failed after %.2f s",
                detected, failed[3] - killed_at)
    assert disconnected[1:3] == ("room", "client")
    assert 0 < detected < 5.0, f"disconnect reported {detected:.1f} s after the kill"
    assert disconnected[3] <= failed[3] <= closed[3]


@pytest.mark.slow
async def test_a_frozen_participant_is_disconnected_then_connected_again_when_it_resumes(
    relay: Relay, events: EventLog
) -> None:
    child = await join_peer_process(relay, events)
    try:
        os.kill(child.pid, signal.SIGSTOP)  # a laptop lid closed, a network outage
        await events.wait("participant-disconnected", "client", timeout=6)
        resumed_at = time.monotonic()
        os.kill(child.pid, signal.SIGCONT)
        again = await events.wait("participant-connected", "client", nth=2, timeout=6)
    finally:
        child.kill()
        await child.wait()
    assert again[3] - resumed_at < 3.0
    assert not events.named("participant-failed", "client")


async def test_a_participant_that_never_connects_is_failed_after_the_connect_timeout(
    endpoints: Callable[..., Endpoint]
) -> None:
    relay = Relay(ice_servers=[], connect_timeout=1.0)
    events = EventLog(relay)
    try:
        endpoint = endpoints("client")
        answered = time.monotonic()
        await relay.join_room("room", "client", await endpoint.offer())  # the answer is never applied
        failed = await events.wait("participant-failed", "client", timeout=5)
        await events.wait("participant-closed", "client", timeout=5)
        assert 0.9 <= failed[3] - answered < 3.0
        assert not events.named("participant-connected", "client")
    finally:
        await relay.close()


async def test_a_closed_relay_refuses_joins(endpoints: Callable[..., Endpoint]) -> None:
    relay = Relay(ice_servers=[])
    await relay.close()
    await relay.close()  # idempotent
    with pytest.raises(RelayError) as refused:
        await relay.join_room("room", "client", await endpoints("client").offer())
    assert refused.value.code == "relay_closed"
