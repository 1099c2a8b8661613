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

Kept in memory per node, like the other rate limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from api.core.ratelimit import RateLimiter

# A successful login from an address within this many days makes the account familiar with it.
FAMILIAR_DAYS = 90


@dataclass
class _Backoff:
    failures: int = 0
    last_at: float = 0.0
    in_flight: int = 0


class LoginThrottle:
    """Decides whether a login attempt may check its password now (see the module docstring)."""

    def __init__(self, *, per_minute: int, backoff_after: int, max_backoff: float,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.backoff_after = backoff_after
        self.max_backoff = max_backoff
        self._clock = clock
        self._max_keys = max_keys
        self._accounts = RateLimiter(per_minute, 60.0, clock=clock, max_keys=max_keys)
        self._addresses = RateLimiter(per_minute, 60.0, clock=clock, max_keys=max_keys)
        self._pairs: dict[tuple[str, str], _Backoff] = {}

    def begin(self, email: str, address: str, *, familiar: bool) -> float:
        """Start an attempt: 0 when its password may be checked (then call :meth:`finish`), else seconds to wait."""
        now = self._clock()
        pair = self._pair(email, address, now)
        wait = self._backoff_wait(pair, now)
        if not familiar:
            wait = max(wait, self._accounts.wait(email), self._addresses.wait(address))
        if wait > 0:
            return wait
        pair.in_flight += 1
        if not familiar:
            self._accounts.hit(email)
            self._addresses.hit(address)
        return 0.0

    def finish(self, email: str, address: str, *, familiar: bool, succeeded: bool) -> None:
        """End an attempt started with :meth:`begin`; a success forgets the pair's failures."""
        pair = self._pair(email, address, self._clock())
        pair.in_flight = max(0, pair.in_flight - 1)
        if succeeded:
            pair.failures = 0
            if not familiar:
                self._accounts.refund(email)
                self._addresses.refund(address)
        else:
            pair.failures += 1
            pair.last_at = self._clock()

    def cancel(self, email: str, address: str, *, familiar: bool) -> None:
        """End an attempt whose password was never checked (the server was too busy): it counts neither way."""
        pair = self._pair(email, address, self._clock())
        pair.in_flight = max(0, pair.in_flight - 1)
        if not familiar:
            self._accounts.refund(email)
            self._addresses.refund(address)

    def _backoff_wait(self, pair: _Backoff, now: float) -> float:
        counted = pair.failures + pair.in_flight
        if counted < self.backoff_after:
            return 0.0
        if pair.in_flight:
            return 1.0  # in backoff, one attempt at a time
        delay = min(self.max_backoff, 2.0 ** (pair.failures - self.backoff_after))
        return max(0.0, pair.last_at + delay - now)

    def _pair(self, email: str, address: str, now: float) -> _Backoff:
        key = (email, address)
        pair = self._pairs.get(key)
        if pair is None:
            if len(self._pairs) >= self._max_keys:
                self._prune(now)
            pair = self._pairs[key] = _Backoff()
        elif not pair.in_flight and pair.failures and now - pair.last_at > 2 * self.max_backoff:
            pair.failures = 0  # long quiet: start afresh
        return pair

    def _prune(self, now: float) -> None:
        for key in [k for k, p in self._pairs.items() if not p.in_flight and now - p.last_at > 2 * self.max_backoff]:
            del self._pairs[key]
