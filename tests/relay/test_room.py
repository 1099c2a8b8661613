"""A 1:1 reading room: both participants send and receive audio and video, and chat."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from relay import Relay, RelayError
from tests.relay.conftest import EventLog, join
from tests.relay.endpoints import Endpoint


@pytest.mark.parametrize("relay", ["direct", "queued"], indirect=True)
async def test_two_participants_receive_and_decode_each_others_audio_and_video(
    relay: Relay, events: EventLog, endpoints: Callable[..., Endpoint]
) -> None:
    reader, client = endpoints("reader"), endpoints("client")
    await join(relay, "reading-1", reader)
    await join(relay, "reading-1", client)
    for endpoint in (reader, client):
        await endpoint.wait_decoded("video", 20)
        await endpoint.wait_decoded("audio", 20)
    for who in ("reader", "client"):
        await events.wait("participant-connected", who)
        assert relay.participant_state(who) == "connected"
    published = {(e[2], e[3]) for e in events.named("track-published")}
    assert published == {("reader", "audio"), ("reader", "video"), ("client", "audio"), ("client", "video")}


async def test_media_starts_without_renegotiation_when_the_other_participant_arrives_later(
    relay: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    reader = endpoints("reader")
    await join(relay, "reading-2", reader)
    await reader.wait_connected()
    signaling_before = reader.pc.signalingState
    client = endpoints("client")
    await join(relay, "reading-2", client)
    await reader.wait_decoded("video", 10)
    assert signaling_before == reader.pc.signalingState == "stable"


async def test_audio_only_reading(relay: Relay, endpoints: Callable[..., Endpoint]) -> None:
    reader = endpoints("reader", send=("audio",), receive=("audio",))
    client = endpoints("client", send=("audio",), receive=("audio",))
    await join(relay, "reading-3", reader)
    await join(relay, "reading-3", client)
    await reader.wait_decoded("audio", 20)
    await client.wait_decoded("audio", 20)


async def test_chat_is_emitted_and_relayed_only_when_the_listener_sends_it_on(
    relay: Relay, events: EventLog, endpoints: Callable[..., Endpoint]
) -> None:
    """The relay forwards no data-channel text by itself: the api applies the chat limits, then sends it."""
    reader, client = endpoints("reader"), endpoints("client")
    await join(relay, "reading-4", reader)
    await join(relay, "reading-4", client)
    await client.wait_decoded("audio", 1)
    await reader.wait_decoded("audio", 1)
    assert client.channel is not None and reader.channel is not None
    client.channel.send("is he the one?")
    client.channel.send("and the second one?")
    await events.wait("chat-message", nth=2)
    assert [e[1:4] for e in events.named("chat-message")] == [
        ("reading-4", "client", "is he the one?"), ("reading-4", "client", "and the second one?")]
    await relay.send_chat("reader", "and the second one?")
    await reader.chat_event.wait()
    assert reader.chat == ["and the second one?"], "only what was sent on, nothing by the relay itself"
    await relay.send_chat("client", "the reader is typing")
    await client.chat_event.wait()
    assert client.chat == ["the reader is typing"]


async def test_a_third_participant_is_refused_with_room_full(
    relay: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    await join(relay, "reading-5", endpoints("reader"))
    await join(relay, "reading-5", endpoints("client"))
    with pytest.raises(RelayError) as refused:
        await join(relay, "reading-5", endpoints("intruder"))
    assert refused.value.code == "room_full"
    assert relay.participant_state("intruder") is None


async def test_a_rejoin_replaces_the_connection_and_the_other_side_keeps_receiving(
    relay: Relay, events: EventLog, endpoints: Callable[..., Endpoint]
) -> None:
    reader, client = endpoints("reader"), endpoints("client")
    await join(relay, "reading-6", reader)
    await join(relay, "reading-6", client)
    await reader.wait_decoded("video", 10)
    await events.wait("participant-connected", "client")
    # The client's tab reloads: a new peer connection and offer, the same participant id.
    await client.close()
    client_again = endpoints("client")
    before = reader.decoded["video"]
    rejoined_at = await join(relay, "reading-6", client_again)
    await reader.wait_decoded("video", before + 15)
    await client_again.wait_decoded("video", 10)
    assert reader.pc.signalingState == "stable"  # the reader never renegotiated
    disconnected = events.named("participant-disconnected", "client")
    assert disconnected and disconnected[0][3] <= rejoined_at + 1
    assert len(events.named("participant-connected", "client")) == 2


async def test_leave_and_close_room_emit_closed_and_release_the_room(
    relay: Relay, events: EventLog, endpoints: Callable[..., Endpoint]
) -> None:
    reader, client = endpoints("reader"), endpoints("client")
    await join(relay, "reading-7", reader)
    await join(relay, "reading-7", client)
    await events.wait("participant-connected", "client")
    before = time.monotonic()
    await relay.leave("client")
    closed = await events.wait("participant-closed", "client")
    assert closed[3] >= before and relay.participant_state("client") is None
    await relay.close_room("reading-7")
    assert (await events.wait("room-closed"))[1] == "reading-7"
    with pytest.raises(RelayError) as unknown:
        await relay.close_room("reading-7")
    assert unknown.value.code == "unknown_room"
