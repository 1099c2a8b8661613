"""Per-user and per-address ceilings on what one party holds at once: the one place such caps are kept.

Used for relay participants on live streams (a free account must not be able to fill the relay) and for
signaling sockets per address. Each item (a relay participant id, a socket) is held by one user from one
client address (:func:`api.core.client_address.client_address`); a party at its ceiling is refused with a 429
``too_many_participants`` / ``too_many_connections``, which signaling turns into an ``error`` reply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from api.core.errors import TooManyRequests


class Holdings:
    """Who holds which items right now, each user under ``per_user`` and each address under ``per_address``.

    :param what: the items' name in the refusal (``stream connections``).
    :param code: the refusal's error code.
    :param alive: whether a claimed item still holds its place (a relay participant whose connection failed
        or timed out has let it go); items that are not alive are forgotten when counted. Items being claimed
        (inside :meth:`holding`) count whatever ``alive`` says.
    """

    def __init__(self, *, per_user: int | None, per_address: int | None, what: str, code: str,
                 alive: Callable[[str], bool] | None = None) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self._what = what
        self._code = code
        self._alive = alive
        self._holder: dict[str, tuple[str, str]] = {}
        self._by_user: dict[str, set[str]] = {}
        self._by_address: dict[str, set[str]] = {}
        self._claiming: set[str] = set()

    def held(self, *, user_id: str | None = None, address: str | None = None) -> int:
        """How many live items the user (or the address) holds."""
        if user_id is not None:
            return self._count(self._by_user.get(user_id))
        return self._count(self._by_address.get(address or ""))

    def claim(self, item: str, user_id: str, address: str) -> None:
        """Hold ``item`` for the user at the address, or raise 429 when either is at its ceiling.

        Claiming an item already held (a re-offer on the same participant) changes nothing.
        """
        if item in self._holder and (self._alive is None or item in self._claiming or self._alive(item)):
            return
        self.release(item)
        if self.per_user is not None and self.held(user_id=user_id) >= self.per_user:
            raise TooManyRequests(f"you already hold {self.per_user} {self._what}; close one first", code=self._code)
        if self.per_address is not None and self.held(address=address) >= self.per_address:
            raise TooManyRequests(f"your network already holds {self.per_address} {self._what}; close one first",
                                  code=self._code)
        self._holder[item] = (user_id, address)
        self._by_user.setdefault(user_id, set()).add(item)
        self._by_address.setdefault(address, set()).add(item)

    @contextlib.contextmanager
    def holding(self, item: str, user_id: str, address: str) -> Iterator[None]:
        """Claim ``item`` while the block makes it real (e.g. the relay answering); a failure releases it."""
        self.claim(item, user_id, address)
        self._claiming.add(item)
        try:
            yield
        except BaseException:
            self.release(item)
            raise
        finally:
            self._claiming.discard(item)

    def release(self, item: str) -> None:
        holder = self._holder.pop(item, None)
        if holder is None:
            return
        user_id, address = holder
        for index, key in ((self._by_user, user_id), (self._by_address, address)):
            items = index.get(key)
            if items is not None:
                items.discard(item)
                if not items:
                    del index[key]

    def _count(self, items: set[str] | None) -> int:
        if not items:
            return 0
        if self._alive is not None:
            for gone in [i for i in items if i not in self._claiming and not self._alive(i)]:
                self.release(gone)
        return len(items)
