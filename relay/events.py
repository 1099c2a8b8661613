"""The relay's events: their names in one enum and their payloads as dataclasses, for both sides.

The relay emits them on its pyee emitter (:meth:`relay.relay.Relay._emit`); the readings side subscribes
with :func:`subscribe`, naming a payload type rather than a string, so a typo is a type error and not a
subscription to nothing. On the wire of pyee a payload is still its fields in order, after the name
(``participant-connected`` (scope_id, participant_id, at)), so a plain ``relay.on(RelayEvent.X, ...)``
listener (the relay's own tests) sees what it always saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar


class RelayEvent(StrEnum):
    PARTICIPANT_CONNECTED = "participant-connected"  # ICE and DTLS connected (again)
    PARTICIPANT_DISCONNECTED = "participant-disconnected"  # consent checks failed, or replaced by a re-join
    PARTICIPANT_FAILED = "participant-failed"  # failed or never connected; the relay closes it
    PARTICIPANT_CLOSED = "participant-closed"  # closed for good (not emitted when a re-join replaces it)
    TRACK_PUBLISHED = "track-published"  # a publisher's media of one kind started flowing in (again)
    CHAT_MESSAGE = "chat-message"  # text on a participant's data channel (the relay forwards none itself)
    ROOM_CLOSED = "room-closed"
    STREAM_CLOSED = "stream-closed"

    @classmethod
    def participant(cls, state: str) -> RelayEvent:
        """The event for a peer that reached ``state`` (connected, disconnected, failed, closed)."""
        return cls(f"participant-{state}")


@dataclass(frozen=True)
class _Event:
    """What every event says first: its name, and the room or stream it happened in."""

    EVENTS: ClassVar[tuple[RelayEvent, ...]] = ()
    event: RelayEvent
    scope_id: str


@dataclass(frozen=True)
class ParticipantChanged(_Event):
    """A participant's connection changed; ``at`` is the relay's ``time.monotonic()`` when it saw it."""

    EVENTS = (RelayEvent.PARTICIPANT_CONNECTED, RelayEvent.PARTICIPANT_DISCONNECTED, RelayEvent.PARTICIPANT_FAILED,
              RelayEvent.PARTICIPANT_CLOSED)
    participant_id: str
    at: float


@dataclass(frozen=True)
class TrackPublished(_Event):
    EVENTS = (RelayEvent.TRACK_PUBLISHED,)
    participant_id: str
    kind: str  # "audio" | "video"
    at: float


@dataclass(frozen=True)
class ChatReceived(_Event):
    EVENTS = (RelayEvent.CHAT_MESSAGE,)
    participant_id: str
    text: str
    at: float


@dataclass(frozen=True)
class ScopeClosed(_Event):
    """A room (a reading's media) or a live stream closed."""

    EVENTS = (RelayEvent.ROOM_CLOSED, RelayEvent.STREAM_CLOSED)
    at: float


Payload = ParticipantChanged | TrackPublished | ChatReceived | ScopeClosed
P = TypeVar("P", ParticipantChanged, TrackPublished, ChatReceived, ScopeClosed)


class Emitter(Protocol):
    def emit(self, event: str, *args: Any) -> bool: ...

    def on(self, event: str, f: Callable[..., Any]) -> Any: ...


def emit(emitter: Emitter, payload: Payload) -> None:
    """Emit ``payload`` under its event's name, its other fields as the listeners' arguments."""
    name, *args = astuple(payload)
    emitter.emit(name, *args)


def subscribe(emitter: Emitter, kind: type[P], handler: Callable[[P], None]) -> None:
    """Call ``handler`` with a ``kind`` payload for every event of that kind."""
    for event in kind.EVENTS:
        emitter.on(event, _listener(event, kind, handler))


def _listener(event: RelayEvent, kind: type[P], handler: Callable[[P], None]) -> Callable[..., None]:
    def listen(*args: Any) -> None:
        handler(kind(event, *args))

    return listen
