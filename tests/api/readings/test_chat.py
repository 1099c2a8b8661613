"""A reading's chat passes one rule whichever way it comes: over ``/ws`` or over the media data channel, the same
size limit and the same per-user rate limit, and a refused data-channel message costs no row and no task
(issue 11, point 12: 3000 messages in 3 s became 3000 rows and tasks; 60 KB messages were relayed whole)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from api.readings.chat import MAX_CHARS
from api.readings.live import LIVE_READINGS
from config import Settings
from relay import events
from relay.events import ChatReceived
from tests.reading_steps import (
    ManualClock,
    Signal,
    accepted_session,
    reader_and_client,
    running_app,
    started_reading,
    wait_for,
)
from tests.relay.endpoints import Endpoint

LIMIT = 5


async def _rows(pool: asyncpg.Pool, session_id: str) -> list[str]:
    rows = await pool.fetch("SELECT body FROM reading_messages WHERE session_id = $1 ORDER BY id", session_id)
    return [r["body"] for r in rows]


async def test_signaling_chat_is_rate_limited_per_user(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, clock=ManualClock(), reading_chat_rate_limit=LIMIT) as http:
        session_id, _customer, _reader, customer_ws, reader_ws = await started_reading(http, pool)
        for i in range(LIMIT + 3):
            await customer_ws.send("chat-message", text=f"question {i}")
        errors = [await customer_ws.expect("error") for _ in range(3)]
        assert {e["code"] for e in errors} == {"rate_limited"}
        await reader_ws.send("chat-message", text="the reader has a limit of her own")
        await customer_ws.expect("chat-message", role="reader")
        assert await _rows(pool, session_id) == [f"question {i}" for i in range(LIMIT)] + [
            "the reader has a limit of her own"]
        await customer_ws.send("chat-message", text="x" * (MAX_CHARS + 1))
        assert (await customer_ws.expect("error"))["code"] in {"invalid", "rate_limited"}


@pytest.mark.slow
async def test_the_data_channel_gets_the_same_limits_and_a_flood_costs_no_rows_or_tasks(
        settings: Settings, pool: asyncpg.Pool) -> None:
    # The readings' clock stands still: however long the flood takes to arrive on a loaded machine, it all
    # falls in one rate window.
    async with running_app(settings, clock=ManualClock(), reading_chat_rate_limit=LIMIT) as http:
        live = http.app[LIVE_READINGS]
        reader, customer = await reader_and_client(http, pool)
        session_id = await accepted_session(http, reader, customer, "video")
        customer_ws, reader_ws = await Signal.open(http, customer), await Signal.open(http, reader)
        await customer_ws.join(session_id)
        await reader_ws.join(session_id)
        peers: dict[str, Endpoint] = {}
        try:
            for name, ws in (("client", customer_ws), ("reader", reader_ws)):
                peers[name] = Endpoint(name)
                await ws.send("offer", sdp=await peers[name].offer())
                await peers[name].accept((await ws.expect("answer", timeout=10))["sdp"])
            await customer_ws.expect("start-session", timeout=15)
            channel = peers["client"].channel
            assert channel is not None
            await wait_for(_open(peers), timeout=10)
            seen: list[Any] = []
            events.subscribe(live.relay, ChatReceived, seen.append)  # after the api's own listener
            channel.send("y" * 60_000)  # refused by size, like over /ws
            flood = [f"message {i}" for i in range(3000)]
            for text in flood:
                channel.send(text)
            await wait_for(_count(seen, 3001), timeout=30)  # each one admitted or refused as it came
            await wait_for(_no_pending(live), timeout=10)
            stored = await _rows(pool, session_id)
            assert stored == flood[:LIMIT - 1], "every attempt counts, the refused 60 KB one too"
            await wait_for(_received(peers["reader"], len(stored)), timeout=10)
            assert peers["reader"].chat == stored, "the reader gets exactly what was stored, in order"
            assert all(len(text) <= MAX_CHARS for text in peers["reader"].chat)
            # One rule: the same user's signaling chat is out of messages too.
            await customer_ws.send("chat-message", text="and over the socket?")
            assert (await customer_ws.expect("error"))["code"] == "rate_limited"
        finally:
            for endpoint in peers.values():
                await endpoint.close()


def _open(peers: dict[str, Endpoint]):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return all(p.channel is not None and p.channel.readyState == "open" for p in peers.values())
    return check


def _count(seen: list[Any], n: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return len(seen) >= n
    return check


def _no_pending(live: Any):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        await asyncio.sleep(0)
        return live.chat.pending == 0
    return check


def _received(endpoint: Endpoint, n: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return len(endpoint.chat) >= n
    return check
