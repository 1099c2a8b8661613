"""Slowing password guessing down without letting anyone lock the owner out of their own account.

Only failed logins count (an attempt is counted when it starts and taken back when the password was right, so
a burst of concurrent guesses cannot slip past), and three buckets decide:

- **account at address** (the email and the client address together): ``backoff_after`` failures are free;
  after that each attempt waits 1, 2, 4 ... seconds (up to ``max_backoff``) after the previous failure. This
  is what stops guessing one account; only someone at the owner's own address can slow the owner down.
- **account** and **address**: at most ``per_minute`` failures a minute each, but only for logins from an
  address the account is not *familiar* with (no successful login from it in the last 90 days, or no such
  account). So failures against an account from elsewhere, or for emails that do not exist, never stop the
  owner logging in from where they usually do; behind one proxy (every user at one address, unless
  ``SOULSEER_TRUSTED_PROXIES`` is set) they only slow down first logins from there.

On one node all of it is kept in memory. In a cluster it is counted in Redis, so that spreading guesses over the
nodes gains nothing: the two per-minute buckets are shared rate limits (:mod:`api.cluster.limits`), and each
account-at-address pair is a Redis hash whose counters change atomically (``HINCRBY``): an attempt reserves its
place first and is judged with every attempt already under way on any node. While Redis does not answer, each
node counts alone.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from api.cluster.limits import SharedRateLimiter
from api.cluster.link import ClusterUnavailable
from api.cluster.node import ClusterNode

# A successful login from an address within this many days makes the account familiar with it.
FAMILIAR_DAYS = 90


@dataclass
class _Backoff:
    failures: int = 0
    last_at: float = 0.0
    in_flight: int = 0


def backoff_wait(pair: _Backoff, now: float, *, backoff_after: int, max_backoff: float) -> float:
    """Seconds the next attempt of a pair must wait (``pair.in_flight``: attempts under way besides it)."""
    counted = pair.failures + pair.in_flight
    if counted < backoff_after:
        return 0.0
    if pair.in_flight:
        return 1.0  # in backoff, one attempt at a time
    delay = min(max_backoff, 2.0 ** (pair.failures - backoff_after))
    return max(0.0, pair.last_at + delay - now)


class _Pairs(Protocol):
    """Where the account-at-address counters live."""

    async def reserve(self, email: str, address: str, now: float) -> _Backoff:
        """Count one more attempt under way; the pair as it was before it."""
        ...

    async def release(self, email: str, address: str, now: float, outcome: bool | None) -> None:
        """The attempt is over: ``outcome`` True (the password was right), False (wrong) or None (never checked)."""
        ...


class _MemoryPairs:
    """The counters of one node, in memory."""

    def __init__(self, *, max_backoff: float, max_keys: int) -> None:
        self._max_backoff = max_backoff
        self._max_keys = max_keys
        self._pairs: dict[tuple[str, str], _Backoff] = {}

    async def reserve(self, email: str, address: str, now: float) -> _Backoff:
        pair = self._pair(email, address, now)
        before = _Backoff(pair.failures, pair.last_at, pair.in_flight)
        pair.in_flight += 1
        return before

    async def release(self, email: str, address: str, now: float, outcome: bool | None) -> None:
        pair = self._pair(email, address, now)
        pair.in_flight = max(0, pair.in_flight - 1)
        if outcome is True:
            pair.failures = 0
        elif outcome is False:
            pair.failures += 1
            pair.last_at = now

    def _pair(self, email: str, address: str, now: float) -> _Backoff:
        key = (email, address)
        pair = self._pairs.get(key)
        if pair is None:
            if len(self._pairs) >= self._max_keys:
                self._prune(now)
            pair = self._pairs[key] = _Backoff()
        elif not pair.in_flight and pair.failures and now - pair.last_at > 2 * self._max_backoff:
            pair.failures = 0  # long quiet: start afresh
        return pair

    def _prune(self, now: float) -> None:
        for key in [k for k, p in self._pairs.items() if not p.in_flight and now - p.last_at > 2 * self._max_backoff]:
            del self._pairs[key]


class _RedisPairs:
    """The counters of the cluster: one hash per pair, expiring after a long quiet (which starts it afresh)."""

    def __init__(self, node: ClusterNode, *, max_backoff: float) -> None:
        self._link = node.link
        self._ttl_ms = int(2 * max_backoff * 1000) + 60_000

    def _key(self, email: str, address: str) -> str:
        digest = hashlib.sha256(f"{email}\n{address}".encode()).hexdigest()[:32]  # no emails in Redis
        return self._link.key("login", digest)

    async def reserve(self, email: str, address: str, now: float) -> _Backoff:
        pipe = self._link.redis.pipeline(transaction=True)
        key = self._key(email, address)
        pipe.hincrby(key, "in_flight", 1)
        pipe.hmget(key, ["failures", "last_at"])
        pipe.pexpire(key, self._ttl_ms)
        in_flight, (failures, last_at), _ = await self._link.call(pipe.execute())
        return _Backoff(int(failures or 0), float(last_at or 0.0), max(0, int(in_flight) - 1))

    async def release(self, email: str, address: str, now: float, outcome: bool | None) -> None:
        pipe = self._link.redis.pipeline(transaction=True)
        key = self._key(email, address)
        pipe.hincrby(key, "in_flight", -1)
        if outcome is True:
            pipe.hset(key, "failures", 0)
        elif outcome is False:
            pipe.hincrby(key, "failures", 1)
            pipe.hset(key, "last_at", now)
        pipe.pexpire(key, self._ttl_ms)
        await self._link.call(pipe.execute())


class LoginThrottle:
    """Decides whether a login attempt may check its password now (see the module docstring).

    :param node: the node's cluster (counted in Redis); None: this node alone, in memory.
    """

    def __init__(self, *, per_minute: int, backoff_after: int, max_backoff: float,
                 clock: Callable[[], float] | None = None, max_keys: int = 100_000,
                 node: ClusterNode | None = None) -> None:
        self.backoff_after = backoff_after
        self.max_backoff = max_backoff
        # Wall time in a cluster: a failure's time is compared on other nodes.
        self._clock = clock or (time.time if node is not None else time.monotonic)
        self._accounts = SharedRateLimiter("login-account", per_minute, 60.0, node=node, clock=self._clock)
        self._addresses = SharedRateLimiter("login-address", per_minute, 60.0, node=node, clock=self._clock)
        self._memory = _MemoryPairs(max_backoff=max_backoff, max_keys=max_keys)
        self._shared = _RedisPairs(node, max_backoff=max_backoff) if node is not None else None

    async def begin(self, email: str, address: str, *, familiar: bool) -> float:
        """Start an attempt: 0 when its password may be checked (then call :meth:`finish`), else seconds to wait."""
        now = self._clock()
        pairs = await self._reserve(email, address, now)
        wait = backoff_wait(pairs[1], now, backoff_after=self.backoff_after, max_backoff=self.max_backoff)
        if not familiar:
            wait = max(wait, await self._accounts.wait(email), await self._addresses.wait(address))
        if wait > 0:
            await self._release(pairs[0], email, address, now, None)
            return wait
        if not familiar:
            await self._accounts.hit(email)
            await self._addresses.hit(address)
        return 0.0

    async def finish(self, email: str, address: str, *, familiar: bool, succeeded: bool) -> None:
        """End an attempt started with :meth:`begin`; a success forgets the pair's failures."""
        await self._release_either(email, address, self._clock(), succeeded)
        if succeeded and not familiar:
            await self._accounts.refund(email)
            await self._addresses.refund(address)

    async def cancel(self, email: str, address: str, *, familiar: bool) -> None:
        """End an attempt whose password was never checked (the server was too busy): it counts neither way."""
        await self._release_either(email, address, self._clock(), None)
        if not familiar:
            await self._accounts.refund(email)
            await self._addresses.refund(address)

    async def _reserve(self, email: str, address: str, now: float) -> tuple[_Pairs, _Backoff]:
        """Count the attempt where it is counted now (Redis, else memory); (that store, the pair before it)."""
        if self._shared is not None:
            try:
                return self._shared, await self._shared.reserve(email, address, now)
            except ClusterUnavailable:
                pass
        return self._memory, await self._memory.reserve(email, address, now)

    async def _release(self, pairs: _Pairs, email: str, address: str, now: float, outcome: bool | None) -> None:
        try:
            await pairs.release(email, address, now, outcome)
        except ClusterUnavailable:
            await self._memory.release(email, address, now, outcome)

    async def _release_either(self, email: str, address: str, now: float, outcome: bool | None) -> None:
        await self._release(self._shared or self._memory, email, address, now, outcome)
