"""The relay uses exactly the ICE servers it is configured with: none means no STUN at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from relay import Relay, RelayError
from relay.aiortc_hooks import ice_connections
from relay.ice import (
    MAX_CANDIDATES_PER_PEER,
    CandidatePolicy,
    candidate_from_browser,
    configuration,
    ice_servers_from_config,
)
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


def _host(address: str, port: int = 54321, protocol: str = "udp", extra: str = "") -> str:
    return f"candidate:1 1 {protocol} 2122260223 {address} {port} typ host{extra}"


@pytest.mark.parametrize("text", [
    _host("224.0.0.251"), _host("ff02::1"), _host("0.0.0.0"), _host("::"), _host("255.255.255.255"),
    _host("0.1.2.3"), _host("240.0.0.1"), _host("::ffff:0.0.0.0"), _host("192.0.2.2", port=0),
    _host("192.0.2.2", port=65536), _host("192.0.2.2", port=-1), _host("evil.example"),
    _host("192.0.2.2", protocol="sctp"), "candidate:1 1 udp 2122260223 192.0.2.2 1 typ bogus",
    "candidate:1 0 udp 1 192.0.2.2 1 typ host", "candidate:1 1 udp 0 192.0.2.2 1 typ host",
    "candidate:1 1 udp 4294967296 192.0.2.2 1 typ host", "candidate:f\u00f6o 1 udp 1 192.0.2.2 1 typ host",
    _host("192.0.2.2", extra=" raddr"), _host("192.0.2.2", extra=" raddr 0.0.0.0 rport 70000"),
    "candidate:1 1 udp 1 192.0.2.2 9 host typ", _host("192.0.2.2", extra=" rport " + "9" * 5000),
    "x" * 2000,
])
def test_candidates_no_peer_can_have_are_refused(text: str) -> None:
    """Multicast, unspecified, broadcast and reserved addresses, port 0 and out-of-range numbers: refused."""
    with pytest.raises(RelayError) as bad:
        candidate_from_browser({"candidate": text, "sdpMid": "0"})
    assert bad.value.code == "bad_candidate"


@pytest.mark.parametrize("init", [
    "nope", ["candidate:1"], {"candidate": 7}, {"candidate": _host("192.0.2.2"), "sdpMLineIndex": "x"},
    {"candidate": _host("192.0.2.2"), "sdpMLineIndex": True}, {"candidate": _host("192.0.2.2"), "sdpMLineIndex": -1},
    {"candidate": _host("192.0.2.2"), "sdpMLineIndex": 64}, {"candidate": _host("192.0.2.2"), "sdpMid": 0},
    {"candidate": _host("192.0.2.2"), "sdpMid": "m" * 65}, {"candidate": "", "sdpMLineIndex": "x"},
])
def test_the_fields_around_the_candidate_are_checked_too(init: object) -> None:
    with pytest.raises(RelayError) as bad:
        candidate_from_browser(init)
    assert bad.value.code == "bad_candidate"


@pytest.mark.parametrize(("text", "private_ok", "public_only"), [
    (_host("8.8.8.8"), None, None),  # a global address: always used
    (_host("2a00:1450:4001:80b::200e"), None, None),
    (_host("192.0.2.2"), None, "private"), (_host("10.1.2.3"), None, "private"), (_host("127.0.0.1"), None, "private"),
    (_host("::1"), None, "private"), (_host("100.64.0.1"), None, "private"), (_host("fd00::1"), None, "private"),
    (_host("1f6bd9d8-6b6d-4e0b-a0b2-3f1b7a9c2d11.local"), None, "mDNS"),
    (_host("169.254.169.254"), "link-local", "link-local"), (_host("fe80::1"), "link-local", "link-local"),
    (_host("8.8.8.8", protocol="tcp", extra=" tcptype active"), "UDP", "UDP"),
    ("candidate:1 2 udp 2122260223 8.8.8.8 9 typ host", "component", "component"),
])
def test_the_policy_says_which_well_formed_candidates_are_used(text: str, private_ok: str | None,
                                                              public_only: str | None) -> None:
    candidate = candidate_from_browser({"candidate": text, "sdpMid": "0"})
    assert candidate is not None
    for policy, expected in ((CandidatePolicy(), private_ok), (CandidatePolicy(allow_private=False), public_only)):
        reason = policy.unused_reason(candidate)
        assert (reason is None) if expected is None else (reason is not None and expected in reason), (policy, reason)


def test_a_browsers_usual_candidates_are_accepted() -> None:
    """What Chrome and Firefox send: extensions, hidden raddr 0.0.0.0 rport 0, upper-case UDP."""
    for text in ("candidate:842163049 1 udp 1677729535 8.8.8.8 56143 typ srflx raddr 0.0.0.0 rport 0 generation 0"
                 " ufrag sXDn network-cost 999",
                 "candidate:0 1 UDP 2122252543 192.168.1.2 49705 typ host",
                 "candidate:3 1 TCP 2105524479 192.168.1.2 9 typ host tcptype active",
                 "candidate:1 1 udp 41885439 8.8.4.4 3478 typ relay raddr 8.8.8.8 rport 56143"):
        assert candidate_from_browser({"candidate": text, "sdpMLineIndex": 0}) is not None


async def _trickling(relay: Relay, endpoint: Endpoint) -> object:
    """Join with an offer that carries no candidate and no end-of-candidates; the relay's ICE transport."""
    offer = await endpoint.offer()
    bare = "\r\n".join(line for line in offer.splitlines()
                        if not line.startswith(("a=candidate:", "a=end-of-candidates"))) + "\r\n"
    await relay.join_room("room", endpoint.name, bare)
    return relay_pc(relay, endpoint.name).getTransceivers()[0].receiver.transport.transport


# Only loopback candidates ever reach ICE in these tests: the relay sends connectivity checks to every
# candidate it uses, and a test sends traffic to this machine alone.
async def test_unused_candidates_never_reach_ice(endpoints: Callable[..., Endpoint]) -> None:
    relay = Relay(ice_servers=[], candidates=CandidatePolicy(allow_private=False))
    try:
        ice = await _trickling(relay, endpoints("reader"))
        for unused in (_host("127.0.0.1"), _host("10.0.0.1"), _host("169.254.169.254"),
                       _host("127.0.0.1", protocol="tcp", extra=" tcptype passive")):
            await relay.add_ice_candidate("reader", {"candidate": unused, "sdpMLineIndex": 0})
        with pytest.raises(RelayError) as bad:
            await relay.add_ice_candidate("reader", {"candidate": _host("224.0.0.1"), "sdpMLineIndex": 0})
        assert bad.value.code == "bad_candidate"
        assert ice.getRemoteCandidates() == []  # type: ignore[attr-defined]
    finally:
        await relay.close()


async def test_a_peer_gets_at_most_its_cap_of_candidates(relay: Relay, endpoints: Callable[..., Endpoint]) -> None:
    ice = await _trickling(relay, endpoints("reader"))
    for port in range(1, MAX_CANDIDATES_PER_PEER + 1):
        await relay.add_ice_candidate("reader", {"candidate": _host("127.0.0.1", port=port), "sdpMLineIndex": 0})
    with pytest.raises(RelayError) as capped:
        await relay.add_ice_candidate("reader", {"candidate": _host("127.0.0.2"), "sdpMLineIndex": 0})
    assert capped.value.code == "too_many_candidates"
    hosts = {(c.ip, c.port) for c in ice.getRemoteCandidates()}  # type: ignore[attr-defined]
    assert hosts == {("127.0.0.1", port) for port in range(1, MAX_CANDIDATES_PER_PEER + 1)}


async def test_a_bad_candidate_is_refused_before_the_participant_is_looked_up(relay: Relay) -> None:
    with pytest.raises(RelayError) as bad:
        await relay.add_ice_candidate("nobody", {"candidate": _host("192.0.2.2"), "sdpMLineIndex": "x"})
    assert bad.value.code == "bad_candidate"
