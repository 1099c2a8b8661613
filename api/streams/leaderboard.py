"""A stream's leaderboard: its top gifters, ranked by the cents they have given (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Gifter:
    """One sender's standing on one stream: what they gave in total and when they last gave."""

    user_id: str
    display_name: str
    total_cents: int
    gifts: int
    last_at: datetime

    def public(self, rank: int) -> dict[str, Any]:
        return {"rank": rank, "userId": self.user_id, "displayName": self.display_name,
                "totalCents": self.total_cents, "gifts": self.gifts}


def _order(gifter: Gifter) -> tuple[int, datetime, str]:
    # More cents first; on a tie, whoever reached that total first stays ahead (a later equal gift does not
    # overtake), then a stable order by id so two nodes rank identically.
    return (-gifter.total_cents, gifter.last_at, gifter.user_id)


class Leaderboard:
    """Running totals per sender for one stream; ``top`` ranks them. Seed it from stored gifts, then ``add``."""

    def __init__(self, gifters: list[Gifter] | None = None, *, limit: int = 10) -> None:
        if limit < 1:
            raise ValueError("a leaderboard shows at least one gifter")
        self.limit = limit
        self._by_user: dict[str, Gifter] = {g.user_id: g for g in gifters or []}

    def add(self, user_id: str, display_name: str, cents: int, at: datetime) -> None:
        """Count one gift of ``cents`` sent at ``at``."""
        if cents <= 0:
            raise ValueError("a gift is worth a positive number of cents")
        known = self._by_user.get(user_id)
        if known is None:
            self._by_user[user_id] = Gifter(user_id, display_name, cents, 1, at)
        else:
            self._by_user[user_id] = replace(known, display_name=display_name, total_cents=known.total_cents + cents,
                                             gifts=known.gifts + 1, last_at=max(known.last_at, at))

    def top(self) -> list[Gifter]:
        return sorted(self._by_user.values(), key=_order)[: self.limit]

    def total_cents(self) -> int:
        return sum(g.total_cents for g in self._by_user.values())

    def public(self) -> list[dict[str, Any]]:
        """The ranked top, in the API's shape (``rank`` starts at 1)."""
        return [g.public(i) for i, g in enumerate(self.top(), start=1)]
