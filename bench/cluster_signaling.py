"""What the signal bridge costs: a browser's socket on the reading's home node against one bridged from another
node through Redis, in one run.

Two ``soulseer serve`` nodes in their own processes share a scratch PostgreSQL database and a Redis (an
embedded ``redis-server``, or ``--redis-url``). This program plays the browsers (accounts made straight in the
database, aiortc peers for media) and, for each reading, puts the client's socket either on the node the
reading runs on (``home``) or on the other one (``bridged``); the reader's socket is always on the home.

- **join -> answer**: from sending ``join`` to the relay's ``answer`` (the offer, made beforehand, is sent the
  moment ``joined`` arrives): two round trips, each one through the bridge when bridged.
- **chat round trip**: once the reading is active (both peers' media up), from sending ``chat-message`` to
  receiving it back (the home sends it to both sockets): one round trip.
- **bridge messages per second**: ``--sockets`` sockets, each joined to its own reading, send messages the home
  answers (an ICE candidate it refuses: ``error``) as fast as their per-socket flood limit lets them, for
  ``--seconds``; the answers per second, and the bus messages per second each node handled
  (``soulseer_cluster_bridge_messages_total``, in + out). The same load on sockets on the home is the baseline.

    python bench/cluster_signaling.py --readings 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.cluster.embedded import EmbeddedRedis  # noqa: E402
from bench.scratch import create_database, drop_database  # noqa: E402
from bench.signaling import Pair, _free_port, _percentile, _user, end, make_pairs, request_accept  # noqa: E402

BAD_CANDIDATE = {"candidate": "candidate:x", "sdpMid": "0", "sdpMLineIndex": 0}


@dataclass
class Node:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    node_id: str = ""


class Socket:
    """One browser tab's ``/ws``: every message it receives, queued by type."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    def queue(self, kind: str) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(kind, asyncio.Queue())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                return
            body = json.loads(message.data)
            self.queue(str(body.get("type"))).put_nowait(body)

    async def next(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue(kind).get(), timeout)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def _peer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def _join(socket: Socket, session_id: str, offer: str) -> float:
    """Seconds from ``join`` to ``answer``."""
    started = time.perf_counter()
    await socket.send({"type": "join", "sessionId": session_id})
    await socket.next("joined")
    await socket.send({"type": "offer", "sdp": offer})
    answer = await socket.next("answer")
    elapsed = time.perf_counter() - started
    socket.queue("answer").put_nowait(answer)
    return elapsed


async def _home(pool: asyncpg.Pool, session_id: str, nodes: list[Node]) -> Node:
    for _ in range(200):
        owner = await pool.fetchval("SELECT lease_owner::text FROM rtc_sessions WHERE id = $1", session_id)
        if owner is not None:
            return next(n for n in nodes if n.node_id == owner)
        await asyncio.sleep(0.02)
    raise RuntimeError("the reading never started on a node")


async def one_reading(nodes: list[Node], pool: asyncpg.Pool, pair: Pair, bridged: bool,
                      chats: int) -> tuple[float, list[float]]:
    """A video reading with the client's socket on its home or bridged: (join->answer s, chat round trips s)."""
    async with aiohttp.ClientSession(base_url=nodes[0].base) as http:
        session_id = await request_accept(http, pair, "video")
    home = await _home(pool, session_id, nodes)
    other = next(n for n in nodes if n is not home)
    client_node = other if bridged else home
    pcs: list[RTCPeerConnection] = []
    sockets: list[Socket] = []
    async with aiohttp.ClientSession(base_url=client_node.base) as on_client, \
            aiohttp.ClientSession(base_url=home.base) as on_home:
        try:
            client = Socket(await on_client.ws_connect("/ws", headers=pair.client))
            reader = Socket(await on_home.ws_connect("/ws", headers=pair.reader))
            sockets = [client, reader]
            (client_pc, client_offer), (reader_pc, reader_offer) = await _peer(), await _peer()
            pcs = [client_pc, reader_pc]
            join_seconds = await _join(client, session_id, client_offer)
            await _join(reader, session_id, reader_offer)
            for pc, socket in ((client_pc, client), (reader_pc, reader)):
                answer = await socket.next("answer")
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            await client.next("start-session")
            trips = []
            for index in range(chats):
                started = time.perf_counter()
                await client.send({"type": "chat-message", "text": f"round trip {index}"})
                while (await client.next("chat-message"))["text"] != f"round trip {index}":
                    pass
                trips.append(time.perf_counter() - started)
            async with aiohttp.ClientSession(base_url=home.base) as http:
                await end(http, pair, session_id)
            return join_seconds, trips
        finally:
            for pc in pcs:
                await pc.close()
            for socket in sockets:
                await socket.close()


async def _bus_messages(node: Node) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{node.base}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("soulseer_cluster_bridge_messages_total{"))


async def throughput(nodes: list[Node], pool: asyncpg.Pool, pairs: list[Pair], bridged: bool,
                     seconds: float) -> tuple[float, dict[str, float]]:
    """Answers per second over every socket, and bus messages per second on each node."""
    sockets: list[Socket] = []
    sessions: list[tuple[Pair, str, Node]] = []
    opened: list[aiohttp.ClientSession] = []
    try:
        for pair in pairs:
            async with aiohttp.ClientSession(base_url=nodes[0].base) as http:
                session_id = await request_accept(http, pair, "chat")
            home = await _home(pool, session_id, nodes)
            node = next(n for n in nodes if n is not home) if bridged else home
            http = aiohttp.ClientSession(base_url=node.base)
            opened.append(http)
            socket = Socket(await http.ws_connect("/ws", headers=pair.client))
            await socket.send({"type": "join", "sessionId": session_id})
            await socket.next("joined")
            sockets.append(socket)
            sessions.append((pair, session_id, home))
        before = {n.name: await _bus_messages(n) for n in nodes}
        answered = 0
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        async def drive(socket: Socket) -> None:
            nonlocal answered
            while time.perf_counter() < deadline:
                await socket.send({"type": "ice-candidate", "candidate": BAD_CANDIDATE})
                await socket.next("error")
                answered += 1
                await asyncio.sleep(0.035)  # under the per-socket flood limit (60 messages per 2 s)

        await asyncio.gather(*(drive(s) for s in sockets))
        wall = time.perf_counter() - started
        after = {n.name: await _bus_messages(n) for n in nodes}
        return answered / wall, {name: (after[name] - before[name]) / wall for name in before}
    finally:
        for socket in sockets:
            await socket.close()
        for http in opened:
            await http.close()
        for pair, session_id, home in sessions:
            async with aiohttp.ClientSession(base_url=home.base) as http:
                with contextlib.suppress(Exception):
                    await end(http, pair, session_id)


async def main(args: argparse.Namespace) -> None:
    name = f"soulseer_bench_cluster_{os.getpid()}"
    url = await create_database(args.database_url, name, migrated=True)
    conn = await asyncpg.connect(url)
    _, admin_headers = await _user(conn, "admin")
    await conn.close()
    redis = None
    redis_url = args.redis_url
    if redis_url is None:
        redis = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="soulseer-bench-redis-")))
        redis_url = redis.start()
    nodes: list[Node] = []
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    try:
        for index in range(2):
            port = _free_port()
            env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "SOULSEER_PORT": str(port),
                   "SOULSEER_REDIS_PREFIX": f"bench{os.getpid()}:", "SOULSEER_NODE_NAME": f"node-{index + 1}",
                   "SOULSEER_LOG_LEVEL": "WARNING", "SOULSEER_SOCKETS_PER_ADDRESS": "1000",
                   "SOULSEER_MAX_PARTICIPANTS": "1000", "SOULSEER_MAX_RELAY_CPU_PERCENT": "0",
                   "SOULSEER_READING_CHAT_RATE_LIMIT": "10000", "SOULSEER_INTRO_FREE_MINUTES": "0"}
            process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            nodes.append(Node(f"node-{index + 1}", f"http://127.0.0.1:{port}", process))
        async with aiohttp.ClientSession() as probe:
            for node in nodes:
                for _ in range(300):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with probe.get(f"{node.base}/api/admin/cluster", headers=admin_headers) as resp:
                            if resp.status == 200:
                                body = await resp.json()
                                if len(body["nodes"]) == 2:
                                    node.node_id = body["nodeId"]
                                    break
                    await asyncio.sleep(0.1)
        results: dict[str, tuple[list[float], list[float]]] = {"home": ([], []), "bridged": ([], [])}
        pairs = await make_pairs(url, 2 * args.readings + 2)
        await one_reading(nodes, pool, pairs.pop(), False, 2)  # warm-up: imports, codecs, pools
        await one_reading(nodes, pool, pairs.pop(), True, 2)
        for index in range(args.readings):
            for mode in ("home", "bridged") if index % 2 == 0 else ("bridged", "home"):
                join_seconds, trips = await one_reading(nodes, pool, pairs.pop(), mode == "bridged", args.chats)
                results[mode][0].append(join_seconds)
                results[mode][1].extend(trips)
        rates = {}
        for mode in ("home", "bridged"):
            rates[mode] = await throughput(nodes, pool, await make_pairs(url, args.sockets), mode == "bridged",
                                           args.seconds)

        load = os.getloadavg()
        print(f"readings={args.readings} per mode, chats={args.chats} each, sockets={args.sockets},"
              f" {args.seconds:.0f} s windows; cpus={os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f}"
              f" {load[2]:.2f}")
        print(f"{'client socket':<14} {'join->answer p50':>17} {'p95':>8} {'chat rtt p50':>13} {'p95':>8}"
              f" {'answers/s':>10} {'bus msg/s per node':>22}")
        for mode in ("home", "bridged"):
            joins, trips = results[mode]
            answers, bus = rates[mode]
            per_node = " / ".join(f"{bus[n.name]:.0f}" for n in nodes)
            print(f"{mode:<14} {_percentile(joins, 0.5) * 1000:>14.1f} ms {_percentile(joins, 0.95) * 1000:>5.1f} ms"
                  f" {_percentile(trips, 0.5) * 1000:>10.1f} ms {_percentile(trips, 0.95) * 1000:>5.1f} ms"
                  f" {answers:>10.0f} {per_node:>22}")
        join_added = (_percentile(results["bridged"][0], 0.5) - _percentile(results["home"][0], 0.5)) * 1000
        chat_added = (_percentile(results["bridged"][1], 0.5) - _percentile(results["home"][1], 0.5)) * 1000
        print(f"the bridge adds {join_added:.1f} ms to join->answer and {chat_added:.1f} ms to a chat round trip at"
              f" p50 (target < 5 ms); bridged/home answers per second: {rates['bridged'][0] / rates['home'][0]:.3f}")
    finally:
        await pool.close()
        for node in nodes:
            node.process.terminate()
        for node in nodes:
            node.process.wait(30)
        if redis is not None:
            redis.stop()
        await drop_database(args.database_url, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="a PostgreSQL server where a scratch database may be created and dropped")
    parser.add_argument("--redis-url", default=None, help="a Redis to use (default: an embedded redis-server)")
    parser.add_argument("--readings", type=int, default=20, help="readings per mode (default 20)")
    parser.add_argument("--chats", type=int, default=10, help="chat round trips per reading (default 10)")
    parser.add_argument("--sockets", type=int, default=20, help="sockets for the throughput window (default 20)")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput window, seconds (default 5)")
    asyncio.run(main(parser.parse_args()))
