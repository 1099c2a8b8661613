"""The relay's events are typed: a payload emitted is the payload subscribed to, and a plain listener still
gets its fields in order (relay/events.py)."""

from __future__ import annotations

from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

from relay import events
from relay.events import ChatReceived, ParticipantChanged, RelayEvent, ScopeClosed


def test_a_subscriber_gets_the_payload_the_relay_emitted() -> None:
    emitter = AsyncIOEventEmitter()
    changes: list[ParticipantChanged] = []
    chats: list[ChatReceived] = []
    events.subscribe(emitter, ParticipantChanged, changes.append)
    events.subscribe(emitter, ChatReceived, chats.append)
    sent = [ParticipantChanged(RelayEvent.participant(state), "room-1", "room-1:client", 1.5)
            for state in ("connected", "disconnected", "failed", "closed")]
    for payload in sent:
        events.emit(emitter, payload)
    events.emit(emitter, ChatReceived(RelayEvent.CHAT_MESSAGE, "room-1", "room-1:reader", "hello", 2.0))
    events.emit(emitter, ScopeClosed(RelayEvent.ROOM_CLOSED, "room-1", 3.0))  # nobody subscribed to it
    assert changes == sent
    assert chats == [ChatReceived(RelayEvent.CHAT_MESSAGE, "room-1", "room-1:reader", "hello", 2.0)]


def test_a_plain_listener_sees_the_fields_in_order_under_the_event_name() -> None:
    emitter = AsyncIOEventEmitter()
    seen: list[tuple[Any, ...]] = []
    emitter.on("track-published", lambda *args: seen.append(args))
    events.emit(emitter, events.TrackPublished(RelayEvent.TRACK_PUBLISHED, "live-4", "reader", "video", 9.0))
    assert seen == [("live-4", "reader", "video", 9.0)]


def test_every_participant_state_has_its_event() -> None:
    assert [RelayEvent.participant(s) for s in ("connected", "disconnected", "failed", "closed")] == \
        list(ParticipantChanged.EVENTS)
