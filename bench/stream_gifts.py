"""Viewers served per core by one SoulSeer node while gifts flow on a live stream.

Starts ``soulseer serve`` in a child process on a fresh PostgreSQL database, puts a reader live with an
aiortc publisher (160x120 VP8 at 30 fps), and grows an audience of aiortc viewers (each on its own signaling
socket, counting the encoded video frames it receives without decoding them). At every audience size it
measures the server process's CPU over a window twice: with no gifts (the baseline) and while viewers send
gifts at ``--gift-rate`` per second (each gift: an HTTP POST, a ledger transaction, a ``gift`` message to
every socket on the stream and a ``stream-state`` push). It prints, per size, the server's CPU, viewers per
core, the frame rate the publisher sent and each viewer received, and gift fan-out latency (POST sent -> the
last viewer has the ``gift`` message), plus the ratio of viewers per core with gifts to without.

    python bench/stream_gifts.py --viewers 10,25,50 --gift-rate 10 --seconds 8

Needs a PostgreSQL server (``--postgres-url``, default ``$TEST_DATABASE_URL``); a database is created and
dropped. Everything runs on this machine over loopback; the load generator shares the cores with the server,
so its own CPU is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import asyncpg
from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamTrack  # noqa: E402
from aiortc.rtp import RtpPacket  # noqa: E402

from api.accounts.auth import start_login  # noqa: E402
from api.accounts.login import insert_account  # noqa: E402
from bench.scratch import create_database, database_url, drop_database  # noqa: E402
from billing import ledger  # noqa: E402
from relay.aiortc_hooks import take_encoded_frames  # noqa: E402
from tests.relay.endpoints import Endpoint  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Watcher:
    """A viewer's peer connection that counts the encoded video frames it receives and never decodes them,
    so the load generator stays light (the server's work is the same either way)."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.frames = 0
        self._changed = asyncio.Event()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        take_encoded_frames(transceiver.receiver, self)

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        if packet.marker:  # the last packet of a video frame
            self.frames += 1
            self._changed.set()
        return False, None

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def wait_frames(self, count: int, timeout: float) -> bool:
        async def reached() -> None:
            while self.frames < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        await self.pc.close()


@dataclass
class Tab:
    """One viewer: an account, its signaling socket and its aiortc peer."""

    user_id: str
    headers: dict[str, str]
    ws: aiohttp.ClientWebSocketResponse
    endpoint: Watcher
    gifts: dict[str, float] = field(default_factory=dict)  # gift id -> when it arrived
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                return
            data = json.loads(message.data)
            if data.get("type") == "gift":
                self.gifts[data["id"]] = time.monotonic()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db_name = f"soulseer_bench_{uuid.uuid4().hex[:8]}"
        self.db_url = database_url(args.postgres_url, self.db_name)
        self.server: subprocess.Popen[bytes] | None = None
        self.pool: asyncpg.Pool | None = None
        self.http: aiohttp.ClientSession | None = None
        self.tabs: list[Tab] = []
        self.password_hash = PasswordHasher().hash("bench password not secret")
        self.gift_ids: list[dict[str, Any]] = []
        self.publisher: asyncio.subprocess.Process | None = None
        self.sent: dict[str, float] = {}

    async def start(self) -> None:
        await create_database(self.args.postgres_url, self.db_name, migrated=False)
        env = {**os.environ, "DATABASE_URL": self.db_url, "SOULSEER_PORT": str(self.port),
               "SOULSEER_LOG_LEVEL": "WARNING", "SOULSEER_GIFT_RATE_LIMIT": "10000",
               "SOULSEER_MAX_PARTICIPANTS": "2000", "PYTHONPATH": str(ROOT),
               # Every viewer connects from 127.0.0.1: one address holding all the sockets and stream connections.
               "SOULSEER_SOCKETS_PER_ADDRESS": "100000", "SOULSEER_STREAM_PARTICIPANTS_PER_ADDRESS": "100000"}
        # The server's warnings go to a file (a pipe nobody reads would block it once full).
        self.log = open(f"/tmp/{self.db_name}.log", "wb")
        self.server = subprocess.Popen(
            [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main(['serve']))"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log)
        self.http = aiohttp.ClientSession(self.base)
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get("/readyz") as resp:
                    if resp.status == 200:
                        break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the server did not become ready")
        self.pool = await asyncpg.create_pool(self.db_url, min_size=1, max_size=4)

    async def user(self, role: str, name: str) -> tuple[str, dict[str, str]]:
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            account = await insert_account(conn, f"{uuid.uuid4().hex}@bench.test", self.password_hash, name, role)
            user_id = str(account["id"])
            token, _ = await start_login(conn, user_id, user_agent="bench", address=None)
        return user_id, {"Authorization": f"Bearer {token}"}

    async def go_live(self) -> None:
        assert self.http is not None
        _, self.reader_headers = await self.user("reader", "Bench Reader")
        async with self.http.post("/api/streams", json={"title": "bench"}, headers=self.reader_headers) as resp:
            self.stream_id = (await resp.json())["stream"]["id"]
        async with self.http.get("/api/gifts", headers=self.reader_headers) as resp:
            self.gift_ids = (await resp.json())["gifts"]
        # The publisher runs in a process of its own: the viewers' event loop, busy setting up dozens of peer
        # connections, must not delay its answers to the relay's ICE consent checks (the relay would drop it).
        self.publisher = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--publish", self.stream_id, "--base", self.base,
            "--token", self.reader_headers["Authorization"].removeprefix("Bearer "),
            stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        self.published = 0
        assert self.publisher.stdout is not None
        first = await asyncio.wait_for(self.publisher.stdout.readline(), 60)
        if not first.startswith(b"frames"):
            raise RuntimeError(f"the publisher did not start: {first!r}")
        self._publisher_lines = asyncio.create_task(self._follow_publisher())

    async def _follow_publisher(self) -> None:
        assert self.publisher is not None and self.publisher.stdout is not None
        async for line in self.publisher.stdout:
            if line.startswith(b"frames "):
                self.published = int(line.split()[1])

    async def add_viewer(self, i: int) -> None:
        assert self.http is not None and self.pool is not None
        user_id, headers = await self.user("client", f"Viewer {i}")
        await ledger.deposit(self.pool, client_id=user_id, cents=10_000_000, key=f"bench:{user_id}", source="manual")
        ws = await self.http.ws_connect("/ws", headers=headers)
        endpoint = Watcher()
        await join_stream(ws, self.stream_id, endpoint)
        tab = Tab(user_id, headers, ws, endpoint)
        tab.reader = asyncio.create_task(tab.read())
        self.tabs.append(tab)

    async def grow(self, viewers: int) -> int:
        """Add viewers up to ``viewers``; returns how many are receiving video (the rest are reported)."""
        while len(self.tabs) < viewers:
            batch = range(len(self.tabs), min(viewers, len(self.tabs) + 10))
            await asyncio.gather(*(self.add_viewer(i) for i in batch))
        receiving = await asyncio.gather(*(t.endpoint.wait_frames(t.endpoint.frames + 3, timeout=30)
                                           for t in self.tabs))
        return sum(receiving)

    async def window(self, seconds: float, gift_rate: float) -> dict[str, float]:
        """Measure one window; with ``gift_rate`` > 0, gifts are sent at that rate throughout it."""
        assert self.server is not None and self.http is not None
        frames_before = sum(t.endpoint.frames for t in self.tabs)
        published_before = self.published
        server_before, self_before = cpu_seconds(self.server.pid), time.process_time()
        started = time.monotonic()
        gifts: list[asyncio.Task[str]] = []
        n = 0
        while (now := time.monotonic()) < started + seconds:
            if gift_rate > 0 and n < (now - started) * gift_rate:
                tab = self.tabs[n % len(self.tabs)]
                gifts.append(asyncio.create_task(self.gift(tab, self.gift_ids[n % len(self.gift_ids)])))
                n += 1
            await asyncio.sleep(0.005 if gift_rate > 0 else 0.2)
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(self.server.pid) - server_before
        own_cpu = time.process_time() - self_before
        frames = sum(t.endpoint.frames for t in self.tabs) - frames_before
        published = self.published - published_before
        latencies = []
        for gift_id in await asyncio.gather(*gifts):
            deadline = time.monotonic() + 10
            while not all(gift_id in t.gifts for t in self.tabs) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            arrived = [t.gifts.get(gift_id) for t in self.tabs]
            if all(a is not None for a in arrived):
                latencies.append(max(a for a in arrived if a is not None) - self.sent[gift_id])
        result = {"cpu": server_cpu / elapsed, "own_cpu": own_cpu / elapsed,
                  "fps": frames / elapsed / len(self.tabs), "gifts": float(len(gifts)),
                  "published_fps": published / elapsed,
                  "gifts_seen": float(len(latencies))}
        if latencies:
            latencies.sort()
            result["p50_ms"] = statistics.median(latencies) * 1000
            result["p95_ms"] = latencies[int(0.95 * (len(latencies) - 1))] * 1000
        return result

    async def gift(self, tab: Tab, gift: dict[str, Any]) -> str:
        assert self.http is not None
        sent = time.monotonic()
        async with self.http.post(f"/api/streams/{self.stream_id}/gifts", headers=tab.headers,
                                  json={"giftId": gift["id"], "requestId": uuid.uuid4().hex,
                                        "expectedCents": gift["priceCents"]}) as resp:
            body = await resp.json()
            if resp.status != 201:
                raise RuntimeError(body)
        gift_id: str = body["gift"]["id"]
        self.sent[gift_id] = sent
        return gift_id

    async def close(self) -> None:
        for tab in self.tabs:
            await tab.endpoint.close()
            await tab.ws.close()
            if tab.reader is not None:
                tab.reader.cancel()
        if self.publisher is not None and self.publisher.returncode is None:
            self.publisher.terminate()
            await self.publisher.wait()
            self._publisher_lines.cancel()
        if self.http is not None:
            await self.http.close()
        if self.pool is not None:
            await self.pool.close()
        if self.server is not None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(15)
            except subprocess.TimeoutExpired:
                self.server.kill()
        self.log.close()
        await drop_database(self.args.postgres_url, self.db_name)


class Offerer(Protocol):
    """A peer that offers and applies the answer (the reader's Endpoint, a viewer's Watcher)."""

    async def offer(self) -> str: ...

    async def accept(self, sdp: str) -> None: ...


async def join_stream(ws: aiohttp.ClientWebSocketResponse, stream_id: str, endpoint: Offerer) -> None:
    """Join ``stream_id`` over the signaling socket and apply the relay's answer to ``endpoint``'s offer."""
    await ws.send_json({"type": "join", "streamId": stream_id})
    await ws.send_json({"type": "offer", "sdp": await endpoint.offer()})
    async for message in ws:
        data = json.loads(message.data)
        if data["type"] == "answer":
            await endpoint.accept(data["sdp"])
            return
        if data["type"] == "error":
            raise RuntimeError(data)


async def publish(args: argparse.Namespace) -> None:
    """The ``--publish`` child: the reader's tab, publishing video and printing ``frames N`` every 0.5 s."""
    endpoint = Endpoint("publisher", send=("video",), receive=(), data_channel=False)
    headers = {"Authorization": f"Bearer {args.token}"}
    async with aiohttp.ClientSession(args.base) as http, http.ws_connect("/ws", headers=headers) as ws:
        await join_stream(ws, args.publish, endpoint)

        async def drain() -> None:  # read everything the server pushes, as a browser tab does
            async for _ in ws:
                pass

        reading = asyncio.create_task(drain())
        try:
            while not reading.done():
                print(f"frames {endpoint.tracks['video'].count}", flush=True)  # type: ignore[attr-defined]
                await asyncio.sleep(0.5)
        finally:
            reading.cancel()
            await endpoint.close()


async def run(args: argparse.Namespace) -> None:
    bench = Bench(args)
    rows = []
    try:
        await bench.start()
        await bench.go_live()
        for viewers in args.viewers:
            receiving = await bench.grow(viewers)
            idle = await bench.window(args.seconds, 0)
            busy = await bench.window(args.seconds, args.gift_rate)
            idle["receiving"] = busy["receiving"] = receiving
            rows.append((viewers, idle, busy))
            print(f"  measured {viewers} viewers", file=sys.stderr)
    finally:
        await bench.close()
    print(f"\nstream_gifts: one node, one stream, 160x120 VP8 30 fps publisher; gifts at {args.gift_rate}/s; "
          f"{args.seconds:.0f} s windows; server CPU in cores (1.00 = one core busy)\n")
    header = ("viewers (receiving)", "gifts/s", "server cpu", "viewers/core", "frames/s sent", "frames/s per viewer",
              "gift p50 ms", "gift p95 ms",
              "seen", "loadgen cpu")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for viewers, idle, busy in rows:
        for label, r in (("0 (baseline)", idle), (f"{args.gift_rate:g}", busy)):
            per_core = viewers / r["cpu"] if r["cpu"] > 0 else float("inf")
            print(f"| {viewers} ({int(r['receiving'])}) | {label} | {r['cpu']:.2f} | {per_core:.0f} | "
                  f"{r['published_fps']:.1f} | {r['fps']:.1f} | "
                  f"{r.get('p50_ms', float('nan')):.0f} | {r.get('p95_ms', float('nan')):.0f} | "
                  f"{int(r['gifts_seen'])}/{int(r['gifts'])} | {r['own_cpu']:.2f} |")
    print("\nratio of viewers/core with gifts to the baseline without:")
    for viewers, idle, busy in rows:
        ratio = idle["cpu"] / busy["cpu"] if busy["cpu"] > 0 else float("nan")
        per_gift = (busy["cpu"] - idle["cpu"]) * args.seconds / busy["gifts"] * 1000 if busy["gifts"] else float("nan")
        print(f"  {viewers} viewers: {ratio:.2f}x  (server cpu per viewer {1000 * idle['cpu'] / viewers:.1f} -> "
              f"{1000 * busy['cpu'] / viewers:.1f} millicores; ~{per_gift:.1f} ms of server CPU per gift)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--viewers", default="10,25,50",
                        type=lambda s: sorted(int(x) for x in s.split(",")), help="audience sizes (default 10,25,50)")
    parser.add_argument("--gift-rate", type=float, default=10.0, help="gifts per second while gifting (default 10)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured window (default 8)")
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/postgres", help="PostgreSQL server to use")
    parser.add_argument("--publish", metavar="STREAM_ID", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(publish(args))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
