"""Who is on a live stream right now: its publisher and its viewers, and so its viewer count (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field


class AudienceFull(Exception):
    """The stream already has as many viewers as it may hold."""


@dataclass
class Audience:
    """The connections (browser tabs / sockets) joined to one stream, by user.

    The viewer count is the number of distinct users watching, the stream's reader excluded: a viewer with two
    tabs open counts once, and only when their last tab leaves does the count go down.
    """

    reader_id: str
    max_viewers: int
    _users: dict[str, str] = field(default_factory=dict)  # connection id -> user id
    _tabs: dict[str, int] = field(default_factory=dict)  # viewer user id -> open connections

    def role_of(self, user_id: str) -> str:
        return "publisher" if user_id == self.reader_id else "viewer"

    def join(self, connection_id: str, user_id: str) -> bool:
        """Add a connection; returns whether the viewer count changed. Raises AudienceFull for a new viewer
        beyond ``max_viewers`` (a further tab of someone already watching is always let in)."""
        if connection_id in self._users:
            return False
        is_viewer = user_id != self.reader_id
        if is_viewer and user_id not in self._tabs and len(self._tabs) >= self.max_viewers:
            raise AudienceFull(f"the stream is full ({self.max_viewers} viewers)")
        self._users[connection_id] = user_id
        if not is_viewer:
            return False
        self._tabs[user_id] = self._tabs.get(user_id, 0) + 1
        return self._tabs[user_id] == 1

    def leave(self, connection_id: str) -> bool:
        """Remove a connection (unknown ones are ignored); returns whether the viewer count changed."""
        user_id = self._users.pop(connection_id, None)
        if user_id is None or user_id == self.reader_id:
            return False
        left = self._tabs[user_id] - 1
        if left:
            self._tabs[user_id] = left
            return False
        del self._tabs[user_id]
        return True

    @property
    def viewer_count(self) -> int:
        return len(self._tabs)

    @property
    def publisher_connected(self) -> bool:
        return self.reader_id in self._users.values()

    def connections(self) -> list[str]:
        return list(self._users)

    def user_of(self, connection_id: str) -> str | None:
        return self._users.get(connection_id)

    def __len__(self) -> int:
        return len(self._users)
