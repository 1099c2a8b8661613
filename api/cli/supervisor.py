"""``soulseer serve --nodes N``: N node processes on one machine, sharing its HTTP port and one Redis.

The relay forwards on one event-loop thread, so one process uses one core for media; a machine with more cores
runs more nodes. This supervisor starts what the nodes share when nothing is configured (the embedded
PostgreSQL without ``DATABASE_URL``, an embedded Redis without ``REDIS_URL``), then N ``soulseer serve``
children named ``node-1`` … ``node-N``, each with its own relay (its own UDP media sockets) and all listening
on the one HTTP port with ``SO_REUSEPORT``, so the kernel spreads new connections across them. A child that
dies is started again (a new node id; its readings are adopted by the survivors meanwhile, docs/cluster.md).
SIGTERM or Ctrl-C drains every child (each hands its readings over and tells its participants to move) and
then stops the embedded servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from api.cluster.embedded import EmbeddedRedis, EmbeddedRedisError
from api.core import metrics_token
from api.core.database import EmbeddedPostgres
from config import Settings

log = logging.getLogger(__name__)

# A drained child exits within this; past it, it is killed (its leases lapse and another node adopts).
STOP_SECONDS = 30.0
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
CLUSTER_LEASE_SECONDS = 6
_PR_SET_PDEATHSIG = 1


def node_count(raw: str) -> int:
    """``--nodes``: a number from 1, or ``auto`` (one node per core this process may run on)."""
    if raw == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    try:
        count = int(raw)
    except ValueError:
        raise ValueError("--nodes must be a number or auto") from None
    if not 1 <= count <= 256:
        raise ValueError("--nodes must be between 1 and 256")
    return count


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM if the supervisor dies (so no node outlives it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started: float = field(default=0.0)


class Supervisor:
    """Runs ``count`` nodes until SIGTERM/SIGINT; see the module docstring.

    :param demo: ``--demo``, given to node-1 only (one process creates the demo accounts).
    """

    def __init__(self, settings: Settings, count: int, *, demo: bool = False) -> None:
        self._settings = settings
        self._count = count
        self._demo = demo
        self._stop = threading.Event()
        self._children = [_Child(f"node-{i + 1}") for i in range(count)]
        self._postgres: EmbeddedPostgres | None = None
        self._redis: EmbeddedRedis | None = None

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        try:
            env = self._shared_env()
        except EmbeddedRedisError as exc:
            print(f"soulseer: {exc}", file=sys.stderr)
            self._stop_services()
            return 2
        log.info("starting nodes", extra={"nodes": self._count, "port": self._settings.port,
                                          "embeddedDatabase": self._postgres is not None,
                                          "embeddedRedis": self._redis is not None})
        try:
            for child in self._children:
                self._start(child, env)
            while not self._stop.wait(0.2):
                self._keep_alive(env)
        finally:
            self._stop_children()
            self._stop_services()
        return 0

    def _shared_env(self) -> dict[str, str]:
        settings = metrics_token.effective(self._settings)  # one token file, written before the nodes start
        env = dict(os.environ)
        if settings.database_url is None:
            self._postgres = EmbeddedPostgres(settings.data_dir)
            env["DATABASE_URL"] = asyncio.run(self._postgres.start())
        if settings.redis_url is None:
            self._redis = EmbeddedRedis(settings.data_dir)
            env["REDIS_URL"] = self._redis.start()
        env.update({"SOULSEER_HOST": settings.host, "SOULSEER_PORT": str(settings.port),
                    "SOULSEER_PUBLIC_URL": settings.public_url, "SOULSEER_REUSE_PORT": "true",
                    "SOULSEER_DATA_DIR": str(settings.data_dir)})
        if settings.metrics_token:
            env["SOULSEER_METRICS_TOKEN"] = settings.metrics_token
        # A reading whose node dies waits for its lease to lapse before a survivor takes it over: with several
        # nodes, a shorter lease than one node's default (renewed every second, so 6 s outlasts 5 missed
        # renewals), unless the operator chose one.
        env.setdefault("SOULSEER_READING_LEASE_SECONDS", str(CLUSTER_LEASE_SECONDS))
        return env

    def _start(self, child: _Child, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "api.cli", "serve", "--nodes", "1"]
        if self._demo and child.name == "node-1" and child.restarts == 0:
            argv.append("--demo")
        child.process = subprocess.Popen(argv, env={**env, "SOULSEER_NODE_NAME": child.name},  # noqa: S603
                                         preexec_fn=_die_with_parent)
        child.started = time.monotonic()
        log.info("node started", extra={"node": child.name, "pid": child.process.pid})

    def _keep_alive(self, env: dict[str, str]) -> None:
        """Start again a child that died (backing off if it keeps dying at start)."""
        now = time.monotonic()
        for child in self._children:
            process = child.process
            if process is not None and process.poll() is not None:
                log.warning("node exited; starting it again", extra={"node": child.name, "pid": process.pid,
                                                                     "returncode": process.returncode})
                quick = now - child.started < 30
                child.restarts = child.restarts + 1 if quick else 1
                child.next_start = now + RESTART_BACKOFF[min(child.restarts, len(RESTART_BACKOFF)) - 1]
                child.process = None
            if child.process is None and now >= child.next_start:
                self._start(child, env)

    def _stop_children(self) -> None:
        """SIGTERM every node (each drains), wait for them, kill what is left after ``STOP_SECONDS``."""
        running = [c.process for c in self._children if c.process is not None and c.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("node did not stop in time; killing it", extra={"pid": process.pid})
                process.kill()
                process.wait()
        log.info("nodes stopped", extra={"nodes": len(running)})

    def _stop_services(self) -> None:
        if self._redis is not None:
            self._redis.stop()
        if self._postgres is not None:
            asyncio.run(self._postgres.stop())
