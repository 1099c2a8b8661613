"""Sliding-window rate limits kept in memory, per key (an account, an address, a socket)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Allows at most ``limit`` events per ``window`` seconds for each key.

    An event may carry a ``token`` (a request id): hits with a token already counted in the window are one event,
    so concurrent retries of one idempotent request use one place, not one each.
    """

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[str, deque[tuple[float, str | None]]] = {}

    def wait(self, key: str, *, token: str | None = None) -> float:
        """Seconds until ``key`` may have another event (0: now), recording nothing."""
        events = self._current(key, self._clock())
        if events is None or len(events) < self.limit or (token is not None and any(t == token for _, t in events)):
            return 0.0
        return events[0][0] + self.window - self._clock()

    def hit(self, key: str, *, token: str | None = None) -> float:
        """Record an event; returns 0 when allowed, else the seconds to wait before the next is allowed."""
        now = self._clock()
        events = self._current(key, now)
        if events is None:
            if len(self._events) >= self._max_keys:
                self._prune(now)
            events = self._events[key] = deque()
        if token is not None and any(t == token for _, t in events):
            return 0.0
        if len(events) >= self.limit:
            return events[0][0] + self.window - now
        events.append((now, token))
        return 0.0

    def refund(self, key: str) -> None:
        """Take back the latest event of ``key`` (it turned out not to count, e.g. a login that succeeded)."""
        events = self._events.get(key)
        if events:
            events.pop()

    def _current(self, key: str, now: float) -> deque[tuple[float, str | None]] | None:
        events = self._events.get(key)
        if events is not None:
            while events and events[0][0] <= now - self.window:
                events.popleft()
        return events

    def _prune(self, now: float) -> None:
        for key in [k for k, ev in self._events.items() if not ev or ev[-1][0] <= now - self.window]:
            del self._events[key]


class UserAndAddressLimiter:
    """One rate limit applied to the user and, with its own ceiling, to the client address; an event counts
    against both only when both allow it, so a refused request does not use up the other's place."""

    def __init__(self, per_user: int, per_address: int, window: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.users = RateLimiter(per_user, window, clock=clock)
        self.addresses = RateLimiter(per_address, window, clock=clock)

    def hit(self, user_id: str, address: str, *, token: str | None = None) -> float:
        wait = max(self.users.wait(user_id, token=token), self.addresses.wait(address, token=token))
        if wait > 0:
            return wait
        return max(self.users.hit(user_id, token=token), self.addresses.hit(address, token=token))
