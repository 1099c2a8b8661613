"""A room: the media of one reading, two participants each receiving the other's audio and video."""

from __future__ import annotations

from relay.errors import RoomFullError
from relay.router import Router, SourceFactory


class Room:
    """A 1:1 reading's media. Each participant publishes into the room and receives the other.

    :param room_id: the room id (the reading's id, as the API chooses).
    :param make_source: builds a participant's source of a kind.
    :param capacity: how many participants the room admits (a reading has two).
    """

    def __init__(self, room_id: str, *, make_source: SourceFactory, capacity: int = 2) -> None:
        self.id = room_id
        self.capacity = capacity
        self.members: set[str] = set()
        self.router = Router(room_id, lambda publisher, subscriber: publisher != subscriber, make_source)

    def __repr__(self) -> str:
        return f"Room({self.id}, {sorted(self.members)})"

    def admit(self, participant_id: str) -> None:
        """Add a participant, or refuse with :class:`RoomFullError`; re-admitting is a no-op."""
        if participant_id in self.members:
            return
        if len(self.members) >= self.capacity:
            raise RoomFullError(f"room {self.id} already has {len(self.members)} participants")
        self.members.add(participant_id)

    def others(self, participant_id: str) -> list[str]:
        return [m for m in self.members if m != participant_id]

    async def remove(self, participant_id: str) -> None:
        self.members.discard(participant_id)
        await self.router.remove_participant(participant_id)

    @property
    def empty(self) -> bool:
        return not self.members

    async def close(self) -> None:
        self.members.clear()
        await self.router.close()
