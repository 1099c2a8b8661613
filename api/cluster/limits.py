"""Rate limits every node counts together: the sliding window of :class:`api.core.ratelimit.RateLimiter`, kept in
Redis when the node is in a cluster, so that a client spreading its requests over N nodes gets the limit once,
not N times.

One sorted set per limited key (``<prefix>limit:<name>:<key>``): a member per event scored by Redis's own clock
(``TIME``, so nodes never compare clocks), pruned of what left the window, expiring with it. A Lua script checks
and records in one step, so concurrent hits on different nodes cannot both take the last place. The rule is
RateLimiter's, event for event (tests/api/cluster/test_limits.py runs one sequence through both): at most
``limit`` events per ``window`` seconds, a ``token`` counted once, a refund giving the latest place back.

With no cluster, or while Redis does not answer, the limit is counted by this node alone (an in-memory
RateLimiter): nothing is refused for Redis's sake, at the price of a per-node count during an outage.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from api.cluster.link import ClusterUnavailable
from api.cluster.node import ClusterNode
from api.core.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# KEYS[1] the key's set; ARGV: limit, window (s), record ("1": an event, "0": only the wait), a fresh member,
# the token ("" for none). Returns the seconds to wait, as a string (0: allowed, and recorded if asked).
_HIT = """
local key, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if ARGV[5] ~= '' and redis.call('ZSCORE', key, 't:' .. ARGV[5]) then
    return '0'
end
if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tostring(tonumber(oldest[2]) + window - now)
end
if ARGV[3] == '1' then
    local member = ARGV[4]
    if ARGV[5] ~= '' then member = 't:' .. ARGV[5] end
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
end
return '0'
"""


class SharedRateLimiter:
    """``limit`` events per ``window`` seconds per key, counted across the cluster (see the module docstring).

    :param name: what is limited (``gifts``, ``login-account``, ...), part of the Redis key.
    :param node: this node's cluster; None: one node, counted in memory.
    :param clock: the in-memory fallback's clock.
    """

    def __init__(self, name: str, limit: int, window: float, *, node: ClusterNode | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.limit = limit
        self.window = window
        self.local = RateLimiter(limit, window, clock=clock)
        self._node = node
        self._script = node.link.redis.register_script(_HIT) if node is not None else None

    def _key(self, key: str) -> str:
        assert self._node is not None
        return self._node.link.key("limit", self.name, key)

    async def wait(self, key: str, *, token: str | None = None) -> float:
        """Seconds until ``key`` may have another event (0: now), recording nothing."""
        shared = await self._shared(key, token, record=False)
        return self.local.wait(key, token=token) if shared is None else shared

    async def hit(self, key: str, *, token: str | None = None) -> float:
        """Record an event; 0 when allowed, else the seconds to wait."""
        shared = await self._shared(key, token, record=True)
        return self.local.hit(key, token=token) if shared is None else shared

    async def refund(self, key: str) -> None:
        """Take back the latest event of ``key``."""
        if self._node is not None and self._node.link.up:
            try:
                await self._node.link.call(self._node.link.redis.zpopmax(self._key(key)))
                return
            except ClusterUnavailable:
                pass
        self.local.refund(key)

    async def _shared(self, key: str, token: str | None, *, record: bool) -> float | None:
        """The wait counted in Redis; None when there is no cluster or Redis does not answer."""
        if self._node is None or self._script is None:
            return None
        try:
            wait = await self._node.link.call(self._script(
                keys=[self._key(key)],
                args=[self.limit, self.window, "1" if record else "0", uuid.uuid4().hex, token or ""]))
        except ClusterUnavailable:
            log.debug("rate limit counted on this node alone while Redis is away", extra={"limit": self.name})
            return None
        return max(0.0, float(wait))


class SharedUserAndAddressLimiter:
    """:class:`api.core.ratelimit.UserAndAddressLimiter` across the cluster: one limit for the user and, with its
    own ceiling, for the client address; an event counts against both only when both allow it."""

    def __init__(self, name: str, per_user: int, per_address: int, window: float, *,
                 node: ClusterNode | None) -> None:
        self.users = SharedRateLimiter(f"{name}-user", per_user, window, node=node)
        self.addresses = SharedRateLimiter(f"{name}-address", per_address, window, node=node)

    async def hit(self, user_id: str, address: str, *, token: str | None = None) -> float:
        wait = max(await self.users.wait(user_id, token=token), await self.addresses.wait(address, token=token))
        if wait > 0:
            return wait
        return max(await self.users.hit(user_id, token=token), await self.addresses.hit(address, token=token))
