"""How many complete reading set-ups one node sustains: request -> accept -> both peers' media connected.

The server runs as ``soulseer serve`` in its own process on a fresh database. This program plays the
readers and clients: it makes the accounts straight in the database (no argon2 in the measurement),
then, with ``--concurrency`` set-ups in flight at a time,

- baseline: REST request -> accept (then end), no signaling, no media;
- full:     REST request -> accept -> both join /ws -> both offer (aiortc peers, audio + video) -> the
            server's ``start-session`` on both sockets (both media connected: the reading is active)
            -> end, peers closed.

It prints set-ups per second for each, the ratio full/baseline, and p50/p99 of the time from the
accept's response to ``start-session`` on both sockets. The aiortc peers run in this process, so on a
small machine they compete with the server for CPU: the numbers are for the pair, not the server alone.

    python bench/signaling.py --database-url postgresql://postgres@127.0.0.1:5432/postgres --sessions 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.accounts.auth import start_login  # noqa: E402
from bench.scratch import create_database, drop_database  # noqa: E402
from billing import ledger  # noqa: E402


@dataclass
class Pair:
    reader_id: str
    reader: dict[str, str]
    client_id: str
    client: dict[str, str]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


RATES = {"chat": 100, "video": 200}  # every bench reader's per-minute rates, which the clients confirm


async def _user(conn: asyncpg.Connection, role: str) -> tuple[str, dict[str, str]]:
    user_id = await conn.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, 'bench-no-password', $2, $3)"
        " RETURNING id", f"{role}-{uuid.uuid4().hex[:10]}@bench.test", role.title(), role)
    if role == "client":
        await conn.execute("INSERT INTO client_balances (client_id) VALUES ($1)", user_id)
    else:
        await conn.execute("INSERT INTO reader_rates (reader_id, chat_cents, video_cents) VALUES ($1, $2, $3)",
                           user_id, RATES["chat"], RATES["video"])
        await conn.execute("INSERT INTO reader_availability (reader_id, status, chosen_status)"
                           " VALUES ($1, 'online', 'online')", user_id)
    token, _ = await start_login(conn, str(user_id), user_agent="bench", address="127.0.0.1")
    return str(user_id), {"Authorization": f"Bearer {token}"}


async def make_pairs(url: str, count: int) -> list[Pair]:
    conn = await asyncpg.connect(url)
    try:
        pairs = []
        for _ in range(count):
            reader_id, reader = await _user(conn, "reader")
            client_id, client = await _user(conn, "client")
            await ledger.deposit(conn, client_id=client_id, cents=100_000, key=f"bench:{client_id}", source="manual")
            pairs.append(Pair(reader_id, reader, client_id, client))
        return pairs
    finally:
        await conn.close()


async def request_accept(http: aiohttp.ClientSession, pair: Pair, session_type: str) -> str:
    async with http.post("/api/webrtc/client/request-session", headers=pair.client,
                         json={"readerId": pair.reader_id, "sessionType": session_type,
                               "expectedCents": RATES[session_type]}) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"request refused: {body}")
    session_id = str(body["session"]["id"])
    async with http.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=pair.reader) as resp:
        if resp.status != 200:
            raise RuntimeError(f"accept refused: {await resp.text()}")
    return session_id


async def end(http: aiohttp.ClientSession, pair: Pair, session_id: str) -> None:
    async with http.post(f"/api/webrtc/session/{session_id}/end", headers=pair.client) as resp:
        if resp.status != 200:
            raise RuntimeError(f"end refused: {await resp.text()}")


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 30) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        while True:
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"socket closed waiting for {kind}")
            body = json.loads(message.data)
            if body.get("type") == kind:
                return body
            if body.get("type") == "error":
                raise RuntimeError(f"signaling error: {body}")

    return await asyncio.wait_for(find(), timeout)


async def _join_and_connect(ws: aiohttp.ClientWebSocketResponse, session_id: str) -> RTCPeerConnection:
    await ws.send_json({"type": "join", "sessionId": session_id})
    await _until(ws, "joined")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
    answer = await _until(ws, "answer")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    return pc


async def full_setup(http: aiohttp.ClientSession, pair: Pair) -> float:
    """One complete set-up; returns seconds from the accept's response to start-session on both sockets."""
    sockets = [await http.ws_connect("/ws", headers=pair.client), await http.ws_connect("/ws", headers=pair.reader)]
    pcs: list[RTCPeerConnection] = []
    try:
        session_id = await request_accept(http, pair, "video")
        accepted = time.perf_counter()
        pcs = list(await asyncio.gather(*(_join_and_connect(ws, session_id) for ws in sockets)))
        await asyncio.gather(*(_until(ws, "start-session") for ws in sockets))
        elapsed = time.perf_counter() - accepted
        await end(http, pair, session_id)
        return elapsed
    finally:
        for pc in pcs:
            await pc.close()
        for ws in sockets:
            await ws.close()


async def baseline_setup(http: aiohttp.ClientSession, pair: Pair) -> float:
    started = time.perf_counter()
    session_id = await request_accept(http, pair, "chat")
    elapsed = time.perf_counter() - started
    await end(http, pair, session_id)
    return elapsed


async def run(kind: str, base: str, pairs: list[Pair], concurrency: int) -> tuple[float, list[float]]:
    """Every pair does one set-up, ``concurrency`` at a time; returns (wall seconds, per-set-up latencies)."""
    queue: asyncio.Queue[Pair] = asyncio.Queue()
    for pair in pairs:
        queue.put_nowait(pair)
    latencies: list[float] = []
    work = full_setup if kind == "full" else baseline_setup

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            latencies.append(await work(http, queue.get_nowait()))

    async with aiohttp.ClientSession(base_url=base) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(args: argparse.Namespace) -> None:
    name = f"soulseer_bench_{os.getpid()}"
    url = await create_database(args.database_url, name, migrated=True)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "SOULSEER_PORT": str(port), "SOULSEER_LOG_LEVEL": "WARNING",
           "SOULSEER_MAX_PARTICIPANTS": str(max(500, 4 * args.concurrency)),
           # Every simulated browser connects from 127.0.0.1: one address holding all the sockets.
           "SOULSEER_SOCKETS_PER_ADDRESS": str(max(500, 4 * args.concurrency))}
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as probe:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with probe.get(f"{base}/readyz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
        results = {}
        for kind in ("baseline", "full"):
            pairs = await make_pairs(url, args.sessions)
            await run(kind, base, pairs[: min(2, len(pairs))], 1)  # warm-up (imports, codecs, pools)
            pairs = await make_pairs(url, args.sessions)
            results[kind] = await run(kind, base, pairs, args.concurrency)
        print(f"sessions={args.sessions} concurrency={args.concurrency} cpus={os.cpu_count()}")
        print(f"{'set-up':<40} {'per s':>8} {'p50 ms':>9} {'p99 ms':>9}")
        labels = {"baseline": "baseline: REST request -> accept",
                  "full": "full: request -> accept -> both media up"}
        for kind, (wall, latencies) in results.items():
            print(f"{labels[kind]:<40} {len(latencies) / wall:>8.2f} {_percentile(latencies, 0.5) * 1000:>9.0f}"
                  f" {_percentile(latencies, 0.99) * 1000:>9.0f}")
        full_rate = len(results["full"][1]) / results["full"][0]
        base_rate = len(results["baseline"][1]) / results["baseline"][0]
        print(f"ratio full/baseline set-ups per second: {full_rate / base_rate:.3f}")
        print("(full p50/p99: from the accept's response to start-session on both sockets;"
              " baseline: request + accept round trips)")
    finally:
        server.terminate()
        server.wait(20)
        await drop_database(args.database_url, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="a PostgreSQL server where a scratch database may be created and dropped")
    parser.add_argument("--sessions", type=int, default=30, help="set-ups per mode (default 30)")
    parser.add_argument("--concurrency", type=int, default=4, help="set-ups in flight at once (default 4)")
    asyncio.run(main(parser.parse_args()))
