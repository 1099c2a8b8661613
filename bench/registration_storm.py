"""What a storm of registrations does to everyone else: an authenticated balance read's latency, idle and while
``--registrations`` registrations arrive at once (issue 11, point 9: 60 of them made the read take 12.5 s).

The server runs as ``soulseer serve`` in its own process on a fresh database (``--server-root`` runs another
checkout's server, e.g. the code before a change, with the same program). The client account is made straight
in the database. Three phases, in one run:

- idle:   balance reads one after another, nothing else happening (the baseline);
- storm:  the registrations all at once from one address, with the server's default limits, while the
          balance is read every ``--interval`` seconds until the last registration answered;
- spread: the same, with the per-address registration limit lifted (as if each came from its own address),
          so that what is measured is the bounded hashing alone.

It prints, per phase, the reads' p50 / p99 / max latency and their ratio to the idle p50, and how the
registrations were answered (201 made, 429 rate limited, 503 hashing saturated).

    python bench/registration_storm.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.accounts.auth import start_login  # noqa: E402
from api.accounts.login import insert_account  # noqa: E402
from bench.scratch import create_database, database_url, drop_database  # noqa: E402

# Never checked: the reading account logs in through start_login, not with a password.
_NO_PASSWORD = "$argon2id$v=19$m=65536,t=3,p=4$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``soulseer serve`` on a fresh database, from ``root``, with extra environment."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.args = args
        self.extra = env
        self.name = f"soulseer_bench_reg_{uuid.uuid4().hex[:8]}"
        self.url = database_url(args.database_url, self.name)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> Server:
        await create_database(self.args.database_url, self.name, migrated=True)
        root = str(Path(self.args.server_root).resolve())
        env = {**os.environ, "DATABASE_URL": self.url, "SOULSEER_PORT": str(self.port),
               "SOULSEER_LOG_LEVEL": "ERROR", "PYTHONPATH": root, **self.extra}
        self.process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=root, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        async with aiohttp.ClientSession() as probe:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with probe.get(f"{self.base}/readyz") as resp:
                        if resp.status == 200:
                            return self
                await asyncio.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        await drop_database(self.args.database_url, self.name)

    async def reader_headers(self) -> dict[str, str]:
        conn = await asyncpg.connect(self.url)
        try:
            async with conn.transaction():
                row = await insert_account(conn, f"reading-{uuid.uuid4().hex[:8]}@bench.test", _NO_PASSWORD,
                                           "Bench", "client")
                token, _ = await start_login(conn, str(row["id"]), user_agent="bench", address="127.0.0.1")
        finally:
            await conn.close()
        return {"Authorization": f"Bearer {token}"}


async def _read(http: aiohttp.ClientSession, server: Server, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    async with http.get(f"{server.base}/api/webrtc/client/balance", headers=headers) as resp:
        await resp.read()
        assert resp.status == 200, resp.status
    return time.perf_counter() - started


async def _register(http: aiohttp.ClientSession, server: Server) -> int:
    body = {"email": f"storm-{uuid.uuid4().hex[:10]}@bench.test", "password": secrets.token_urlsafe(12),
            "displayName": "Storm", "role": "client"}
    async with http.post(f"{server.base}/api/auth/register", json=body) as resp:
        await resp.read()
        return resp.status


async def storm(args: argparse.Namespace, env: dict[str, str]) -> tuple[list[float], Counter[int], float]:
    """Reads while the registrations run; returns read latencies, registration statuses, and the storm's length."""
    async with Server(args, env) as server:
        headers = await server.reader_headers()
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout,
                                         connector=aiohttp.TCPConnector(limit=args.registrations + 10)) as http:
            await _read(http, server, headers)  # warm up
            started = time.perf_counter()
            registering = asyncio.gather(*(_register(http, server) for _ in range(args.registrations)))
            reads: list[float] = []
            while not registering.done():
                reads.append(await _read(http, server, headers))
                await asyncio.sleep(args.interval)
            statuses = Counter(await registering)
            return reads, statuses, time.perf_counter() - started


async def idle(args: argparse.Namespace) -> list[float]:
    async with Server(args, {}) as server:
        headers = await server.reader_headers()
        async with aiohttp.ClientSession() as http:
            await _read(http, server, headers)
            return [await _read(http, server, headers) for _ in range(args.idle_reads)]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server where the benchmark may create and drop a database")
    parser.add_argument("--registrations", type=int, default=60, help="registrations arriving at once")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between balance reads in a storm")
    parser.add_argument("--idle-reads", type=int, default=50, help="balance reads in the idle baseline")
    parser.add_argument("--server-root", default=str(ROOT), help="the checkout whose server is measured")
    args = parser.parse_args()

    quiet = await idle(args)
    base = statistics.median(quiet)
    rows = [("idle", quiet, Counter[int](), 0.0)]
    reads, statuses, took = await storm(args, {})
    rows.append(("storm", reads, statuses, took))
    reads, statuses, took = await storm(args, {"SOULSEER_REGISTRATIONS_PER_HOUR": "100000"})
    rows.append(("spread", reads, statuses, took))

    print(f"server: {args.server_root}; {args.registrations} registrations at once; cores: {os.cpu_count()}")
    print(f"{'phase':<8} {'reads':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p50/idle':>8} {'max/idle':>8}"
          f" {'storm s':>8}  registrations")
    for name, values, counted, seconds in rows:
        p50, p99, worst = _quantile(values, 0.5), _quantile(values, 0.99), max(values)
        answered = ", ".join(f"{count}x{status}" for status, count in sorted(counted.items())) or "-"
        print(f"{name:<8} {len(values):>5} {p50 * 1000:>8.1f} {p99 * 1000:>8.1f} {worst * 1000:>8.1f}"
              f" {p50 / base:>8.1f} {worst / base:>8.1f} {seconds:>8.1f}  {answered}")


if __name__ == "__main__":
    asyncio.run(main())
