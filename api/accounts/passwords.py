"""Password hashing (argon2id) off the event loop, a bounded number at a time.

argon2 is slow on purpose (64 MiB and four threads per hash with argon2-cffi's defaults): unbounded, sixty
registrations at once took every core and every pooled database connection from everyone else. Here at most
``workers`` hashes run at once on their own threads, at most ``queue`` more wait, and anything beyond is
refused at once with a 503 ``auth_busy`` and a ``Retry-After``, before any database connection is taken.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.core.errors import Unavailable

log = logging.getLogger(__name__)
_HASHER = PasswordHasher()
T = TypeVar("T")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (blocking: call it from a worker thread or a CLI)."""
    return _HASHER.hash(password)


@functools.cache
def _dummy_hash() -> str:
    # Verified against when an email is unknown, so a login takes as long whether or not the account exists.
    return _HASHER.hash("not-a-real-password")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (blocking); None (no such account) never matches."""
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class PasswordWork:
    """The process's password hashing: ``workers`` threads, ``queue`` waiting, the rest refused (503)."""

    def __init__(self, *, workers: int, queue: int) -> None:
        self.workers = workers
        self.queue = queue
        self.in_flight = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    async def _run(self, work: Callable[..., T], *args: str | None) -> T:
        if self.in_flight >= self.workers + self.queue:
            log.warning("password hashing saturated", extra={"inFlight": self.in_flight})
            raise Unavailable("the server is busy checking passwords; try again in a few seconds",
                              code="auth_busy", headers={"Retry-After": "2"})
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
