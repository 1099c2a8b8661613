"""The relay uses exactly the ICE servers it is configured with: none means no STUN at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from relay import Relay, RelayError
from relay.aiortc_hooks import ice_connections
from relay.ice import candidate_from_browser, configuration, ice_servers_from_config
from tests.relay.conftest import join
from tests.relay.endpoints import Endpoint


def relay_pc(relay: Relay, participant: str) -> RTCPeerConnection:
    peer = relay._participants[participant].peer
    assert peer is not None
    return peer.pc


async def test_an_empty_server_list_means_host_candidates_only_and_no_stun(
    relay: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    # What the relay guards against: aiortc alone falls back to Google's STUN server.
    default = RTCPeerConnection(RTCConfiguration())
    default.addTransceiver("audio")
    assert ice_connections(default)[0].stun_server == ("stun.l.google.com", 19302)
    await default.close()

    endpoint = endpoints("reader")
    await join(relay, "room", endpoint)
    connection = ice_connections(relay_pc(relay, "reader"))[0]
    assert connection.stun_server is None and connection.turn_server is None
    answer = relay_pc(relay, "reader").localDescription.sdp
    candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(" typ host" in c for c in candidates)


async def test_configured_stun_and_turn_servers_are_passed_to_ice() -> None:
    servers = ice_servers_from_config([
        {"urls": "stun:192.0.2.2:3478"},
        {"urls": ["turn:192.0.2.2:3478?transport=udp"], "username": "u", "credential": "p"},
    ])
    pc = RTCPeerConnection(configuration(servers))
    pc.addTransceiver("audio")
    connection = ice_connections(pc)[0]
    assert connection.stun_server == ("192.0.2.2", 3478)
    assert connection.turn_server == ("192.0.2.2", 3478)
    assert (connection.turn_username, connection.turn_password) == ("u", "p")
    await pc.close()


@pytest.mark.parametrize(
    "server",
    [{"urls": "http://example.org"}, {"urls": []}, {"urls": "turn:192.0.2.2"}, {"username": "u"}],
)
def test_malformed_ice_servers_are_refused(server: dict[str, object]) -> None:
    with pytest.raises(RelayError) as refused:
        Relay(ice_servers=[server])
    assert refused.value.code == "bad_ice_server"


def test_browser_candidates_are_parsed_and_end_of_candidates_accepted() -> None:
    candidate = candidate_from_browser({
        "candidate": "candidate:1 1 udp 2122260223 192.0.2.2 54321 typ host generation 0",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    })
    assert candidate is not None
    assert (candidate.ip, candidate.port, candidate.sdpMid) == ("192.0.2.2", 54321, "0")
    assert candidate_from_browser({"candidate": "", "sdpMid": "0"}) is None
    assert candidate_from_browser(None) is None
    with pytest.raises(RelayError) as bad:
        candidate_from_browser({"candidate": "candidate:garbage", "sdpMid": "0"})
    assert bad.value.code == "bad_candidate"


async def test_trickled_candidates_reach_the_peer_and_unknown_participants_are_refused(
    relay: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    await join(relay, "room", endpoints("reader"))
    await relay.add_ice_candidate("reader", {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0})
    with pytest.raises(RelayError) as unknown:
        await relay.add_ice_candidate("nobody", {"candidate": ""})
    assert unknown.value.code == "unknown_participant"


async def test_candidates_trickled_while_the_offer_is_being_answered_are_not_lost(
    relay: Relay, endpoints: Callable[..., Endpoint]
) -> None:
    """A browser trickles its candidates right after its offer; signaling may deliver them before
    join_room has applied the offer. The offer here carries no candidate at all."""
    endpoint = endpoints("reader")
    offer = await endpoint.offer()
    lines = offer.splitlines()
    candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
    bare = "\r\n".join(line for line in lines if not line.startswith(("a=candidate:", "a=end-of-candidates")))
    joining = asyncio.ensure_future(relay.join_room("room", "reader", bare + "\r\n"))
    while relay.participant_state("reader") is None:
        await asyncio.sleep(0)
    for candidate in candidates:
        await relay.add_ice_candidate("reader", {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0})
    await relay.add_ice_candidate("reader", {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0})
    await endpoint.accept(await joining)
    await endpoint.wait_connected()
    ice = relay_pc(relay, "reader").getTransceivers()[0].receiver.transport.transport
    ports = {c.port for c in ice.getRemoteCandidates()}
    assert {int(c.split()[5]) for c in candidates} <= ports, "every trickled candidate reached ICE"
