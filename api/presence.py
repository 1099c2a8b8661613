"""Who is connected to this node right now (their signaling sockets), so a message can reach a user live.

Single node: presence is in memory. Every message that must not be lost (notifications) is also stored;
pushing is a best-effort shortcut for the users who happen to be connected.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Outlet(Protocol):
    """Something that carries JSON messages to one connected browser tab (a signaling socket)."""

    user_id: str

    def send(self, message: dict[str, Any]) -> bool:
        """Queue a message; False when the outlet is closed or too far behind."""
        ...


class Presence:
    """The live outlets of each user on this node."""

    def __init__(self) -> None:
        self._outlets: dict[str, set[Outlet]] = defaultdict(set)

    def add(self, outlet: Outlet) -> None:
        self._outlets[outlet.user_id].add(outlet)

    def remove(self, outlet: Outlet) -> None:
        outlets = self._outlets.get(outlet.user_id)
        if outlets is not None:
            outlets.discard(outlet)
            if not outlets:
                del self._outlets[outlet.user_id]

    def outlets(self, user_id: str) -> list[Outlet]:
        return list(self._outlets.get(user_id, ()))

    def online(self, user_id: str) -> bool:
        return bool(self._outlets.get(user_id))

    def push(self, user_id: str, message: dict[str, Any]) -> int:
        """Send to every tab of the user; returns how many took it."""
        delivered = 0
        for outlet in self.outlets(user_id):
            delivered += outlet.send(message)
        return delivered

    @property
    def connections(self) -> int:
        return sum(len(v) for v in self._outlets.values())
