"""Real ``soulseer serve`` processes for the cluster tests: started with an environment of the test's own, waited
on until ready, stopped with SIGTERM (or killed), and asked who they are."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.reading_steps import Party, wait_for

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of a test node: the test's database, plain-text logs, no Redis unless given."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"DATABASE_URL": database_url, "SOULSEER_PORT": str(port), "SOULSEER_LOG_JSON": "false",
                "SOULSEER_SECRET_KEY": "cluster-test-secret-key", "SOULSEER_MAX_RELAY_CPU_PERCENT": "0",
                "SOULSEER_MAX_RELAY_LOOP_LAG_MS": "0", "SOULSEER_RELAY_SHED_LAG_MS": "0",
                # Every reading billed from its first minute, as the other tests' settings have it.
                "SOULSEER_INTRO_FREE_MINUTES": "0"})
    env.update(extra)
    return env


@contextmanager
def serve(env: dict[str, str], log: Path, *args: str, stop_timeout: float = 40) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m api.cli serve *args`` with ``env``; SIGTERM (then SIGKILL) at the end if still running."""
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", *args], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def ready(base: str, timeout: float = 40) -> None:
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            try:
                async with http.get(f"{base}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(up, timeout=timeout, interval=0.1)


async def cluster_view(base: str, admin: Party, *, fresh: bool = True) -> dict[str, Any]:
    """``GET /api/admin/cluster`` on a new connection (``fresh``: the kernel picks the node it lands on)."""
    connector = aiohttp.TCPConnector(force_close=fresh)
    async with aiohttp.ClientSession(connector=connector) as http, \
            http.get(f"{base}/api/admin/cluster", headers=admin.headers) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
