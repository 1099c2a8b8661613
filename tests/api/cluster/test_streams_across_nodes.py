"""One live stream on three real ``soulseer serve`` nodes sharing PostgreSQL and Redis: the reader publishes to the
stream's home (the origin), viewers' sockets land on every node, and each other node becomes an edge that pulls
the stream once from the origin over a server-to-server peer connection and serves its own viewers' media. One
audience: the viewer count and a gift are the same for everyone. An edge whose last viewer leaves lets its pull
go; ending the stream frees every pull."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis

from tests.api.cluster.processes import cluster_view, free_port, node_env, ready, serve
from tests.api.stream_sockets import SignalingClient
from tests.reading_steps import Party, deposit, quick_user, wait_for
from tests.relay.endpoints import Endpoint

pytestmark = pytest.mark.slow
VIEWERS_PER_NODE = 10


class Viewer:
    """A viewer's socket on one node and its aiortc peer (decoding, or counting encoded frames: cheaper)."""

    def __init__(self, party: Party, node: int, socket: SignalingClient, endpoint: Endpoint) -> None:
        self.party, self.node, self.socket, self.endpoint = party, node, socket, endpoint

    async def close(self) -> None:
        await self.endpoint.close()
        await self.socket.close()


@contextlib.asynccontextmanager
async def three_nodes(database_url: str, tmp_path: Path, redis_url: str, prefix: str, admin: Party,
                      processes: list[subprocess.Popen[bytes]] | None = None,
                      ) -> AsyncIterator[tuple[list[str], list[str]]]:
    """Three nodes: (their base URLs, their node ids); ``processes`` is filled with theirs."""
    ports = [free_port() for _ in range(3)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    with ExitStack() as nodes:
        for index, port in enumerate(ports):
            env = node_env(database_url, port, REDIS_URL=redis_url, SOULSEER_REDIS_PREFIX=prefix,
                           SOULSEER_NODE_NAME=f"node-{index + 1}",
                           SOULSEER_STREAM_PARTICIPANTS_PER_ADDRESS="1000")  # every test viewer is on loopback
            process = nodes.enter_context(serve(env, tmp_path / f"node-{index + 1}.log"))
            if processes is not None:
                processes.append(process)
        for base in bases:
            await ready(base)

        async def three() -> bool:
            return len((await cluster_view(bases[0], admin))["nodes"]) == 3

        await wait_for(three, timeout=20, interval=0.2)
        yield bases, [(await cluster_view(base, admin))["nodeId"] for base in bases]


async def loads(base: str, admin: Party) -> dict[str, dict[str, Any]]:
    return {n["id"]: n["load"] for n in (await cluster_view(base, admin))["nodes"]}


async def test_one_stream_served_by_three_nodes_each_edge_pulling_once(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path, redis_server_url: str, redis_prefix: str) -> None:
    admin = await quick_user(pool, "admin")
    reader = await quick_user(pool, "reader", "Madame Iris")
    async with three_nodes(database_url, tmp_path, redis_server_url, redis_prefix, admin) as (bases, node_ids), \
            contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(aiohttp.ClientSession(base_url=b)) for b in bases]
        resp = await sessions[0].post("/api/streams", json={"title": "Full moon"}, headers=reader.headers)
        assert resp.status == 201, await resp.text()
        stream_id = (await resp.json())["stream"]["id"]
        store = redis.Redis.from_url(redis_server_url)
        stack.push_async_callback(store.aclose)
        home_id = (await store.get(f"{redis_prefix}room:stream:{stream_id}")).decode()
        home = node_ids.index(home_id)

        reader_ws = SignalingClient(await sessions[0].ws_connect("/ws", headers=reader.headers))
        stack.push_async_callback(reader_ws.close)
        assert (await reader_ws.join_stream(stream_id))["role"] == "publisher"
        publisher = Endpoint("publisher", send=("audio", "video"), receive=(), data_channel=False)
        stack.push_async_callback(publisher.close)
        await reader_ws.send({"type": "offer", "sdp": await publisher.offer()})
        await publisher.accept((await reader_ws.wait("answer", timeout=20))["sdp"])

        viewers: list[Viewer] = []
        for node in range(3):
            for i in range(VIEWERS_PER_NODE):
                party = await quick_user(pool, "client", f"Viewer {node + 1}.{i}")
                socket = SignalingClient(await sessions[node].ws_connect("/ws", headers=party.headers))
                endpoint = Endpoint(party.id, send=(), receive=("audio", "video"), data_channel=False,
                                    decode=i == 0)
                viewer = Viewer(party, node, socket, endpoint)
                viewers.append(viewer)
                stack.push_async_callback(viewer.close)
                await socket.join_stream(stream_id)
                await socket.send({"type": "offer", "sdp": await endpoint.offer()})
                await endpoint.accept((await socket.wait("answer", timeout=30))["sdp"])
        await asyncio.gather(*(v.endpoint.wait_decoded("video", 10, timeout=30) for v in viewers))
        await asyncio.gather(*(v.endpoint.wait_decoded("audio", 10, timeout=30) for v in viewers))

        # One audience: the reader and every viewer see every viewer, wherever their socket and media are.
        total = 3 * VIEWERS_PER_NODE
        for socket in (reader_ws, *(v.socket for v in viewers)):
            await socket.wait("stream-state", lambda m: m["viewerCount"] == total, timeout=15)
        # Each edge pulls once: the origin's relay holds its own viewers and one subscriber per edge; an edge's
        # relay holds its own viewers only.
        edges = [n for n in range(3) if n != home]

        async def relays_hold(expected: dict[int, int]) -> bool:
            seen = await loads(bases[0], admin)
            return all(seen[node_ids[n]]["viewers"] == count for n, count in expected.items())

        expected = {home: VIEWERS_PER_NODE + len(edges), **{n: VIEWERS_PER_NODE for n in edges}}
        await wait_for(lambda: relays_hold(expected), timeout=15, interval=0.2)

        # A gift paid on the last node reaches every viewer on every node, and the reader.
        giver = next(v for v in viewers if v.node == 2)
        await deposit(pool, giver.party.id, 5_000)
        gifts = (await (await sessions[2].get("/api/gifts", headers=giver.party.headers)).json())["gifts"]
        resp = await sessions[2].post(f"/api/streams/{stream_id}/gifts", headers=giver.party.headers,
                                      json={"giftId": gifts[0]["id"], "requestId": "g-1",
                                            "expectedCents": gifts[0]["priceCents"]})
        assert resp.status == 201, await resp.text()
        for socket in (reader_ws, *(v.socket for v in viewers)):
            gift = await socket.wait("gift", timeout=15)
            assert gift["giftId"] == gifts[0]["id"] and gift["streamId"] == stream_id

        # The last viewer of an edge leaves: that edge lets its pull go; the other edge keeps serving.
        gone, kept = edges
        for viewer in [v for v in viewers if v.node == gone]:
            await viewer.close()
        expected = {home: VIEWERS_PER_NODE + 1, gone: 0, kept: VIEWERS_PER_NODE}
        await wait_for(lambda: relays_hold(expected), timeout=15, interval=0.2)

        async def streams_on(node: int, count: int) -> bool:
            return bool((await loads(bases[0], admin))[node_ids[node]]["streams"] == count)

        await wait_for(lambda: streams_on(gone, 0), timeout=10, interval=0.2)
        still = next(v for v in viewers if v.node == kept)
        decoded = still.endpoint.decoded["video"]
        await still.endpoint.wait_decoded("video", decoded + 10, timeout=10)

        # Ending the stream ends it everywhere and frees every pull.
        assert (await sessions[1].post(f"/api/streams/{stream_id}/end", headers=reader.headers)).status == 200
        for socket in (reader_ws, *(v.socket for v in viewers if v.node != gone)):
            await socket.wait("stream-state", lambda m: m["status"] == "ended", timeout=15)
        for node in range(3):
            await wait_for(lambda node=node: streams_on(node, 0), timeout=10, interval=0.2)  # type: ignore[misc]


@dataclass
class LiveStream:
    """A stream gone live over REST on three nodes (the tests' nodes, sessions to each, the cluster's Redis)."""

    admin: Party
    reader: Party
    bases: list[str]
    node_ids: list[str]
    processes: list[subprocess.Popen[bytes]]
    sessions: list[aiohttp.ClientSession]
    store: redis.Redis
    prefix: str
    stream_id: str
    stack: contextlib.AsyncExitStack

    async def origin(self) -> int:
        """The index of the stream's home (its origin), as the cluster's room map has it."""
        return self.node_ids.index((await self.store.get(f"{self.prefix}room:stream:{self.stream_id}")).decode())


@contextlib.asynccontextmanager
async def live_stream(database_url: str, pool: asyncpg.Pool, tmp_path: Path, redis_url: str, prefix: str,
                      title: str) -> AsyncIterator[LiveStream]:
    admin = await quick_user(pool, "admin")
    reader = await quick_user(pool, "reader", "Madame Iris")
    processes: list[subprocess.Popen[bytes]] = []
    async with three_nodes(database_url, tmp_path, redis_url, prefix, admin, processes) as (bases, node_ids), \
            contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(aiohttp.ClientSession(base_url=b)) for b in bases]
        resp = await sessions[0].post("/api/streams", json={"title": title}, headers=reader.headers)
        assert resp.status == 201, await resp.text()
        store = redis.Redis.from_url(redis_url)
        stack.push_async_callback(store.aclose)
        yield LiveStream(admin, reader, bases, node_ids, processes, sessions, store, prefix,
                         str((await resp.json())["stream"]["id"]), stack)


async def publish(session: aiohttp.ClientSession, reader: Party, stream_id: str,
                  stack: contextlib.AsyncExitStack) -> SignalingClient:
    """The reader's tab on ``session``'s node: joined, publishing (a fresh peer each time, as a browser's)."""
    socket = SignalingClient(await session.ws_connect("/ws", headers=reader.headers))
    stack.push_async_callback(socket.close)
    assert (await socket.join_stream(stream_id))["role"] == "publisher"
    endpoint = Endpoint("publisher", send=("audio", "video"), receive=(), data_channel=False)
    stack.push_async_callback(endpoint.close)
    await socket.send({"type": "offer", "sdp": await endpoint.offer()})
    await endpoint.accept((await socket.wait("answer", timeout=20))["sdp"])
    socket.publisher = endpoint  # type: ignore[attr-defined]
    return socket


async def watch(pool: asyncpg.Pool, session: aiohttp.ClientSession, node: int, stream_id: str,
                stack: contextlib.AsyncExitStack, party: Party | None = None) -> Viewer:
    """A viewer's tab on ``session``'s node, joined and offering (``party``: the same viewer joining again)."""
    party = party or await quick_user(pool, "client", f"Viewer on {node + 1}")
    socket = SignalingClient(await session.ws_connect("/ws", headers=party.headers))
    endpoint = Endpoint(party.id, send=(), receive=("audio", "video"), data_channel=False)
    viewer = Viewer(party, node, socket, endpoint)
    stack.push_async_callback(viewer.close)
    await socket.join_stream(stream_id)
    await socket.send({"type": "offer", "sdp": await endpoint.offer()})
    await endpoint.accept((await socket.wait("answer", timeout=30))["sdp"])
    return viewer


async def more_frames(viewer: Viewer, count: int = 10, timeout: float = 20) -> None:
    await viewer.endpoint.wait_decoded("video", viewer.endpoint.decoded["video"] + count, timeout=timeout)


async def test_faults_the_publisher_returns_the_origin_dies_an_edge_dies(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path, redis_server_url: str, redis_prefix: str) -> None:
    async with live_stream(database_url, pool, tmp_path, redis_server_url, redis_prefix, "Storm") as live:
        admin, reader, bases, node_ids, processes = live.admin, live.reader, live.bases, live.node_ids, live.processes
        sessions, stream_id, stack = live.sessions, live.stream_id, live.stack
        home = await live.origin()
        edges = [n for n in range(3) if n != home]
        reader_ws = await publish(sessions[home], reader, stream_id, stack)
        viewers = [await watch(pool, sessions[n], n, stream_id, stack) for n in edges for _ in range(2)]
        await asyncio.gather(*(more_frames(v) for v in viewers))

        # The publisher drops and returns: every edge resumes, no viewer joins again.
        await reader_ws.publisher.close()  # type: ignore[attr-defined]
        await reader_ws.close()
        reader_ws = await publish(sessions[home], reader, stream_id, stack)
        await asyncio.gather(*(more_frames(v) for v in viewers))
        assert all(len(v.socket.of_type("joined")) == 1 for v in viewers)

        # The origin dies: the reader's tab joins again; the stream gets a new origin, the other survivor pulls from
        # it, and the viewers (all on the survivors) keep their sockets and peer connections (the next test looks
        # closer).
        processes[home].kill()
        processes[home].wait()
        reader_ws = await publish(sessions[edges[0]], reader, stream_id, stack)
        origin = await live.origin()
        assert origin in edges
        await asyncio.gather(*(more_frames(v, timeout=30) for v in viewers))
        assert all(not v.socket.ws.closed and len(v.socket.of_type("joined")) == 1 for v in viewers)
        await reader_ws.wait("stream-state", lambda m: m["viewerCount"] == len(viewers), timeout=15)
        edge = next(n for n in edges if n != origin)

        async def origin_holds(count: int) -> bool:
            seen = await loads(bases[origin], admin)
            return bool(seen[node_ids[origin]]["viewers"] == count)

        on_origin = sum(1 for v in viewers if v.node == origin)
        await wait_for(lambda: origin_holds(on_origin + 1), timeout=15, interval=0.25)  # one pull: the edge's

        # The edge dies: its viewers' tabs join again on the node still there and get the stream; the origin lets
        # the dead edge's pull go.
        processes[edge].kill()
        processes[edge].wait()
        for viewer in [v for v in viewers if v.node == edge]:
            viewers.remove(viewer)
            viewers.append(await watch(pool, sessions[origin], origin, stream_id, stack, party=viewer.party))
        await asyncio.gather(*(more_frames(v) for v in viewers))
        await wait_for(lambda: origin_holds(len(viewers)), timeout=20, interval=0.25)


async def give(pool: asyncpg.Pool, session: aiohttp.ClientSession, giver: Party, stream_id: str,
               request_id: str) -> dict[str, Any]:
    """The giver pays for the catalogue's cheapest gift on ``session``'s node; the catalogue entry."""
    gifts = (await (await session.get("/api/gifts", headers=giver.headers)).json())["gifts"]
    resp = await session.post(f"/api/streams/{stream_id}/gifts", headers=giver.headers,
                              json={"giftId": gifts[0]["id"], "requestId": request_id,
                                    "expectedCents": gifts[0]["priceCents"]})
    assert resp.status == 201, await resp.text()
    return dict(gifts[0])


@pytest.mark.parametrize("stop", ["kill", "drain"])
async def test_the_origin_stops_viewers_on_the_edges_keep_their_sockets_and_their_picture(
        stop: str, database_url: str, pool: asyncpg.Pool, tmp_path: Path, redis_server_url: str,
        redis_prefix: str) -> None:
    """Issue 14's last fault: the origin's node is killed (or drained: SIGTERM, as a rolling restart does; it
    closes its sockets with 1012). The reader's tab joins again (on a survivor) and the
    stream gets a new origin; viewers whose socket and media are on the surviving nodes keep both (no close, no
    second ``joined``, the same peer connection) and decode frames again once the reader publishes anew; a viewer
    whose socket was on the dead node joins again elsewhere, as its browser does. Gifts paid before and after land
    once each, in the ledger and in everyone's leaderboard."""
    async with live_stream(database_url, pool, tmp_path, redis_server_url, redis_prefix, "Eclipse") as live:
        admin, reader, bases, node_ids, processes = live.admin, live.reader, live.bases, live.node_ids, live.processes
        sessions, stream_id, stack = live.sessions, live.stream_id, live.stack
        origin = live.origin
        home = await origin()
        edges = [n for n in range(3) if n != home]
        reader_ws = await publish(sessions[home], reader, stream_id, stack)
        kept = [await watch(pool, sessions[n], n, stream_id, stack) for n in edges for _ in range(2)]
        on_home = await watch(pool, sessions[home], home, stream_id, stack)
        await asyncio.gather(*(more_frames(v) for v in [*kept, on_home]))
        giver = kept[0]
        await deposit(pool, giver.party.id, 5_000)
        gift = await give(pool, sessions[giver.node], giver.party, stream_id, "before")
        for socket in (reader_ws, *(v.socket for v in [*kept, on_home])):
            await socket.wait("gift", timeout=15)
        pcs = [v.endpoint.pc for v in kept]
        ssrcs = [v.endpoint.video_ssrcs() for v in kept]

        killed = time.monotonic()
        if stop == "kill":
            processes[home].kill()
        else:
            processes[home].send_signal(signal.SIGTERM)
        processes[home].wait(30)
        # The reader's tab, its socket gone with the node, joins again where the load balancer puts it.
        reader_ws = await publish(sessions[edges[0]], reader, stream_id, stack)
        republished = time.monotonic() - killed
        new_origin = await origin()
        assert new_origin in edges
        # The viewer whose socket was on the dead node joins again elsewhere (stream-client.js does on a close).
        rejoined = await watch(pool, sessions[edges[1]], edges[1], stream_id, stack, party=on_home.party)

        # The viewers on the survivors decode again: same sockets, same peer connections, one join each.
        await asyncio.gather(*(more_frames(v, timeout=30) for v in kept))
        print(f"origin stopped ({stop}): the reader published again after {republished:.1f} s, the kept viewers "
              f"decoded again after {time.monotonic() - killed:.1f} s")
        await more_frames(rejoined, timeout=30)
        for viewer, pc, heard in zip(kept, pcs, ssrcs, strict=True):
            assert not viewer.socket.ws.closed
            assert len(viewer.socket.of_type("joined")) == 1
            assert viewer.endpoint.pc is pc and pc.connectionState == "connected"
            # Their edge's outgoing media ran on: one SSRC, timestamps advancing with the clock across the outage
            # (aiortc unwraps them: one that went back would show as a leap of ~2**32).
            assert viewer.endpoint.video_ssrcs() == heard
            steps = [b - a for a, b in itertools.pairwise(viewer.endpoint.video_pts)]
            assert 0 < min(steps) and max(steps) < 30 * 90000
        total = len(kept) + 1
        for socket in (reader_ws, *(v.socket for v in [*kept, rejoined])):
            await socket.wait("stream-state", lambda m: m["viewerCount"] == total and m["status"] == "live",
                              timeout=15)

        # The other survivor pulls from the new origin once; the new origin holds its own viewers and that pull.
        async def relays_hold(expected: dict[int, int]) -> bool:
            seen = await loads(bases[new_origin], admin)
            return all(seen[node_ids[n]]["viewers"] == count for n, count in expected.items())

        other = next(n for n in edges if n != new_origin)
        on_origin = sum(1 for v in [*kept, rejoined] if v.node == new_origin)
        on_other = sum(1 for v in [*kept, rejoined] if v.node == other)
        await wait_for(lambda: relays_hold({new_origin: on_origin + 1, other: on_other}), timeout=20, interval=0.25)

        # A gift after the failover reaches every kept socket and the reader; each gift was paid exactly once.
        for viewer in kept:
            viewer.socket.received.clear()
        await give(pool, sessions[giver.node], giver.party, stream_id, "after")
        for socket in (reader_ws, *(v.socket for v in [*kept, rejoined])):
            await socket.wait("gift", timeout=15)
            await socket.wait("stream-state", lambda m: bool(m["leaderboard"])
                              and m["leaderboard"][0]["totalCents"] == 2 * gift["priceCents"], timeout=15)
        price = gift["priceCents"]
        assert await pool.fetchval("SELECT count(*) FROM gift_sends WHERE stream_id = $1", stream_id) == 2
        assert await pool.fetchval("SELECT balance_cents FROM client_balances WHERE client_id = $1",
                                   giver.party.id) == 5_000 - 2 * price
        earned = await pool.fetchval("SELECT sum(amount_cents) FROM ledger_entries WHERE account = 'earnings' "
                                     "AND owner_id = $1", reader.id)
        assert earned == 2 * (price * 70 // 100)
