"""A busy stream end to end: fifty aiortc viewers watching while twenty of them send gifts at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from billing import ledger
from billing.split import split
from config import Settings
from tests.api.stream_sockets import SignalingClient
from tests.api.users import quick_user
from tests.relay.endpoints import Endpoint

VIEWERS, GIFTERS, GIFTS_EACH, DEPOSIT = 50, 20, 3, 10_000


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    """The app, with every viewer's connection coming from 127.0.0.1: one address holds them all here."""
    crowd = replace(settings, stream_participants_per_address=VIEWERS + 1, sockets_per_address=2 * VIEWERS)
    async with TestClient(TestServer(create_app(crowd), host="127.0.0.1")) as test_client:
        yield test_client


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_fifty_viewers_watch_while_twenty_send_gifts_and_every_cent_is_accounted_for(
        client: TestClient, pool: asyncpg.Pool) -> None:
    reader, rh = await quick_user(client, "reader", name="Madame Iris")
    stream = (await (await client.post("/api/streams", json={"title": "Busy night"}, headers=rh)).json())["stream"]
    reader_ws = await SignalingClient.connect(client, rh)
    await reader_ws.join_stream(stream["id"])
    publisher = Endpoint("publisher", send=("video",), receive=(), data_channel=False)
    viewers: list[tuple[dict, dict[str, str], SignalingClient, Endpoint]] = []
    try:
        await reader_ws.send({"type": "offer", "sdp": await publisher.offer()})
        await publisher.accept((await reader_ws.wait("answer"))["sdp"])

        async def join(i: int) -> tuple[dict, dict[str, str], SignalingClient, Endpoint]:
            user, headers = await quick_user(client, name=f"Viewer {i:02d}")
            if i < GIFTERS:
                await ledger.deposit(pool, client_id=user["id"], cents=DEPOSIT, key=f"dep:{user['id']}",
                                     source="manual")
            ws = await SignalingClient.connect(client, headers)
            await ws.join_stream(stream["id"])
            endpoint = Endpoint(f"viewer-{i}", send=(), receive=("video",), data_channel=False)
            await ws.send({"type": "offer", "sdp": await endpoint.offer()})
            await endpoint.accept((await ws.wait("answer", timeout=30))["sdp"])
            return user, headers, ws, endpoint

        for batch in range(0, VIEWERS, 10):
            viewers += await asyncio.gather(*(join(i) for i in range(batch, min(batch + 10, VIEWERS))))
        await reader_ws.wait("stream-state", lambda m: m["viewerCount"] == VIEWERS, timeout=30)

        gifts = (await (await client.get("/api/gifts", headers=rh)).json())["gifts"]

        async def gift(headers: dict[str, str], n: int, g: dict) -> int:
            resp = await client.post(f"/api/streams/{stream['id']}/gifts",
                                     json={"giftId": g["id"], "requestId": f"load-{n}",
                                           "expectedCents": g["priceCents"]}, headers=headers)
            assert resp.status == 201, await resp.text()
            return int(g["priceCents"])

        # Every viewer is receiving media while the gifts flow.
        await asyncio.gather(*(e.wait_decoded("video", 3, timeout=60) for _, _, _, e in viewers))
        before = {e.name: e.decoded["video"] for _, _, _, e in viewers}
        prices = await asyncio.gather(*(gift(headers, n, gifts[(i + n) % len(gifts)])
                                        for i, (_, headers, _, _) in enumerate(viewers[:GIFTERS])
                                        for n in range(GIFTS_EACH)))
        sent = GIFTERS * GIFTS_EACH
        for ws in [reader_ws, *(ws for _, _, ws, _ in viewers)]:
            seen = await ws.wait_count("gift", sent, timeout=30)
            assert len({g["id"] for g in seen}) == sent
        await asyncio.gather(*(e.wait_decoded("video", before[e.name] + 3, timeout=60) for _, _, _, e in viewers))

        # Every cent: the wallets lost exactly what the gifts cost, and the reader and platform got all of it.
        total = sum(prices)
        spent = sum([DEPOSIT - await ledger.balance(pool, u["id"]) for u, _, _, _ in viewers[:GIFTERS]])
        assert spent == total == await pool.fetchval("SELECT sum(price_cents) FROM gift_sends")
        assert await ledger.earnings(pool, reader["id"]) == sum(split(p)[0] for p in prices)
        sums = await pool.fetchrow(
            "SELECT sum(e.amount_cents) FILTER (WHERE e.account = 'wallet') AS wallets,"
            " sum(e.amount_cents) FILTER (WHERE e.account = 'earnings') AS earnings,"
            " sum(e.amount_cents) FILTER (WHERE e.account = 'revenue') AS revenue"
            " FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.txn_id WHERE t.kind = 'gift'")
        assert -sums["wallets"] == sums["earnings"] + sums["revenue"] == total
        assert sums["revenue"] == sum(split(p)[1] for p in prices)
        unbalanced = await pool.fetchval(
            "SELECT count(*) FROM (SELECT txn_id FROM ledger_entries GROUP BY txn_id"
            " HAVING sum(amount_cents) <> 0) x")
        assert unbalanced == 0
        assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE kind = 'gift'") == sent
    finally:
        await publisher.close()
        for _, _, ws, endpoint in viewers:
            await endpoint.close()
            await ws.close()
        await reader_ws.close()
