"""Who is connected to this node right now (their signaling sockets), so a message can reach a user live.

Single node: presence is in memory. Every message that must not be lost (notifications) is also stored;
pushing is a best-effort shortcut for the users who happen to be connected.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

log = logging.getLogger(__name__)


class Tab(Protocol):
    """One connected browser tab, as far as pushing to it goes (a signaling socket).

    (Not the relay's :class:`relay.outlet.Outlet`, which is a subscriber's media send path.)
    """

    user_id: str

    def send(self, message: dict[str, Any]) -> bool:
        """Queue a message; False when the tab is closed or too far behind."""
        ...


# Told when a user's first tab on this node opens (True) and when their last one closes (False).
PresenceListener = Callable[[Tab, bool], None]


class Presence:
    """The connected tabs of each user on this node."""

    def __init__(self) -> None:
        self._tabs: dict[str, set[Tab]] = defaultdict(set)
        self._listeners: list[PresenceListener] = []

    def listen(self, listener: PresenceListener) -> None:
        """Call ``listener(tab, True)`` when a user comes (their first tab) and ``(tab, False)`` when they go."""
        self._listeners.append(listener)

    def add(self, tab: Tab) -> None:
        first = not self._tabs.get(tab.user_id)
        self._tabs[tab.user_id].add(tab)
        if first:
            self._tell(tab, True)

    def remove(self, tab: Tab) -> None:
        tabs = self._tabs.get(tab.user_id)
        if tabs is not None and tab in tabs:
            tabs.discard(tab)
            if not tabs:
                del self._tabs[tab.user_id]
                self._tell(tab, False)

    def _tell(self, tab: Tab, here: bool) -> None:
        for listener in self._listeners:
            try:
                listener(tab, here)
            except Exception:
                log.exception("presence listener failed", extra={"userId": tab.user_id})

    def tabs(self, user_id: str) -> list[Tab]:
        return list(self._tabs.get(user_id, ()))

    def users(self) -> list[str]:
        """Every user with a tab here."""
        return list(self._tabs)

    def online(self, user_id: str) -> bool:
        return bool(self._tabs.get(user_id))

    def push(self, user_id: str, message: dict[str, Any]) -> int:
        """Send to every tab of the user; returns how many took it."""
        delivered = 0
        for tab in self.tabs(user_id):
            delivered += tab.send(message)
        return delivered

    @property
    def connections(self) -> int:
        return sum(len(v) for v in self._tabs.values())


# Set up by :func:`api.realtime.setup`; notifications and the signaling sockets use it.
PRESENCE = web.AppKey("presence", Presence)
