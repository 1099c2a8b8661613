"""This node's connection to the cluster's Redis: every key and channel under one prefix, short timeouts, and
a clear refusal (``503 cluster_unavailable``) instead of a hang while Redis does not answer.

Redis holds what the nodes share that is not money: the node registry, where rooms live, cross-node messages
and cluster-wide rate limits. PostgreSQL stays the source of truth; nothing in Redis is needed to keep a
running reading's media and meter going (docs/cluster.md, "When Redis goes away").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from api.core.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds one command may take before Redis counts as unreachable: long enough for a loaded Redis, short
# enough that a request needing it fails fast.
COMMAND_TIMEOUT = 1.0
# The errors that mean "Redis did not answer" (refused, reset, timed out, restarting, read-only replica).
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def cancel_requests() -> int:
    """How many times the current task has been asked to stop so far (``Task.cancelling``)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def absorbed(before: int) -> bool:
    """The current task was cancelled since ``cancel_requests()`` said ``before``, yet no CancelledError came out:
    redis-py absorbed it (a cancelled read turns into a connection error, or even a result). Compared with the
    count before the command, not with zero: a task still running after its cancellation (aiohttp's shutdown runs
    the app's clean-up in its cancelled main task) may go on using Redis."""
    return cancel_requests() > before


class ClusterUnavailable(Unavailable):
    """Redis does not answer right now; what needed it did nothing (try again in a moment)."""

    code = "cluster_unavailable"


class RedisLink:
    """One node's client for the cluster's Redis (redis-py's asyncio client, one pool per node).

    :param url: ``REDIS_URL``.
    :param prefix: put before every key and channel, so several clusters (or tests) can share one Redis.
    :param clock: monotonic seconds, for :attr:`down_for`.
    """

    def __init__(self, url: str, prefix: str, *, timeout: float = COMMAND_TIMEOUT, clock: Any = time.monotonic,
                 name: str = "soulseer") -> None:
        self.url = url
        self.prefix = prefix
        self._clock = clock
        # One retry, at once, on a fresh connection: after Redis restarts, every pooled connection is dead and
        # fails once when next used; a Redis that is really down fails the retry as fast (refused) or within one
        # more timeout. Beyond that the caller decides (the heartbeat tries again in two seconds; a request 503s).
        self.redis: redis.Redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1), health_check_interval=10, client_name=name)
        self.up = True
        self._down_since: float | None = None
        self.errors = 0

    def key(self, *parts: str) -> str:
        """A key (or channel) name under the cluster's prefix: ``key("node", id)`` -> ``<prefix>node:<id>``."""
        return self.prefix + ":".join(parts)

    async def call(self, command: Awaitable[T]) -> T:
        """Await one Redis command; Redis not answering marks the link down and raises ClusterUnavailable."""
        before = cancel_requests()
        try:
            result = await command
        except REDIS_ERRORS as exc:
            if absorbed(before):
                raise asyncio.CancelledError from exc
            self.failed(exc)
            raise ClusterUnavailable("the cluster's shared state (Redis) is unreachable; try again in a moment") \
                from exc
        if absorbed(before):  # a cancellation redis-py's connection handling absorbed: honour it here
            raise asyncio.CancelledError
        self.answered()
        return result

    def failed(self, exc: BaseException) -> None:
        """A command failed for lack of Redis: the link is down from now until a command succeeds."""
        self.errors += 1
        if self.up:
            self.up = False
            self._down_since = self._clock()
            log.warning("redis unreachable: %s", exc or type(exc).__name__, extra={"redis": self.safe_url})

    def answered(self) -> None:
        if not self.up:
            log.info("redis reachable again", extra={"redis": self.safe_url,
                                                     "downSeconds": round(self.down_for, 1)})
            self.up = True
            self._down_since = None

    @property
    def down_for(self) -> float:
        """Seconds since Redis stopped answering (0 while it answers)."""
        return 0.0 if self._down_since is None else self._clock() - self._down_since

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs."""
        _, sep, tail = self.url.rpartition("@")
        return f"{self.url.split('://', 1)[0]}://***@{tail}" if sep else self.url

    async def close(self) -> None:
        await self.redis.aclose()
