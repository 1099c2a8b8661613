"""Reading offers: media SSRC for PLIs, codecs by payload type, directions; and what the relay refuses before
aiortc sees an offer (issue 11, point 13)."""

from __future__ import annotations

import re

import pytest

from relay import BadSdpError, Relay
from relay.ice import MAX_CANDIDATES_PER_PEER, CandidatePolicy
from relay.sdp import MAX_MEDIA_SECTIONS, MAX_SDP_CHARS, check_offer, parse_session

OFFER = """v=0
o=- 1 1 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0 1 2
m=audio 9 UDP/TLS/RTP/SAVPF 111
a=mid:0
a=sendrecv
a=rtpmap:111 opus/48000/2
a=ssrc:1111 cname:x
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102
a=mid:1
a=sendonly
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=ssrc-group:FID 2222 3333
a=ssrc:3333 cname:x
a=ssrc:2222 cname:x
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
a=mid:2
"""


def test_offer_summary_names_media_ssrcs_codecs_and_directions() -> None:
    summary = parse_session(OFFER)
    audio, video = summary.media
    assert (audio.kind, audio.mid, audio.direction, audio.media_ssrc) == ("audio", "0", "sendrecv", 1111)
    assert video.media_ssrc == 2222, "the FID group's first SSRC, not the RTX one listed first"
    assert video.codecs == {96: "VP8", 97: "RTX", 102: "H264"} and video.first_codec == "VP8"
    assert video.sends and not video.receives
    assert summary.has_data_channel


@pytest.mark.parametrize("sdp", ["", "hello", "v=0\r\nm=audio\r\n", "v=0\r\n"])
def test_garbage_is_refused_as_bad_sdp(sdp: str) -> None:
    with pytest.raises(BadSdpError):
        parse_session(sdp)


# A browser puts its ICE and DTLS credentials in every m-section.
BROWSER_OFFER = re.sub(r"(a=mid:\d\n)", r"\1a=setup:actpass\na=ice-ufrag:abcd\na=ice-pwd:0123456789abcdefghijkl\n"
                                        r"a=fingerprint:sha-256 AB:CD\n", OFFER)


def _refused(sdp: object) -> BadSdpError:
    with pytest.raises(BadSdpError) as refused:
        check_offer(sdp, CandidatePolicy())
    return refused.value


def test_a_browser_offer_passes_unchanged_but_for_line_endings() -> None:
    offer = check_offer(BROWSER_OFFER, CandidatePolicy())
    assert offer.sdp == BROWSER_OFFER.replace("\n", "\r\n")
    assert [m.kind for m in offer.summary.media] == ["audio", "video"] and offer.candidates == 0


@pytest.mark.parametrize("role", ["holdconn", "", "ACTPASS", "actpass;x"])
def test_a_setup_role_other_than_actpass_active_passive_is_bad_sdp(role: str) -> None:
    """The issue's ``a=setup:holdconn`` reached aiortc and died there with a KeyError (a 500-like internal)."""
    assert "a=setup" in _refused(BROWSER_OFFER.replace("a=setup:actpass", f"a=setup:{role}")).message


def test_an_m_line_with_thousands_of_payload_types_is_bad_sdp() -> None:
    """The issue's 8000 payload types tripped an AssertionError inside aiortc."""
    many = " ".join(str(pt) for pt in range(8000))
    assert "payload types" in _refused(BROWSER_OFFER.replace("SAVPF 96 97 102", f"SAVPF {many}")).message


@pytest.mark.parametrize("attribute", ["a=setup:actpass", "a=fingerprint:sha-256 AB:CD", "a=ice-ufrag:abcd"])
def test_every_m_section_must_carry_its_dtls_and_ice_credentials(attribute: str) -> None:
    """Without ``a=setup`` aiortc drops a section's DTLS parameters, then raised AttributeError inside
    setRemoteDescription (an ``internal`` error the WebSocket fuzz test hit now and then)."""
    refused = _refused(BROWSER_OFFER.replace(f"{attribute}\n", "", 1)).message
    assert ("DTLS" if "ice" not in attribute else "ICE") in refused


@pytest.mark.parametrize("payload_types", ["96 96", "72", "128", "-1", "x", "0x60", "\u0669"])
def test_payload_types_must_be_distinct_and_rtp_legal(payload_types: str) -> None:
    _refused(BROWSER_OFFER.replace("SAVPF 96 97 102", f"SAVPF 96 {payload_types}"))


def test_size_and_m_line_count_are_bounded() -> None:
    assert "larger" in _refused(BROWSER_OFFER + "a=x:" + "y" * MAX_SDP_CHARS).message
    extra = "".join(f"m=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:{i + 3}\n" for i in range(MAX_MEDIA_SECTIONS))
    assert "m-lines" in _refused(BROWSER_OFFER + extra).message


@pytest.mark.parametrize("broken", [
    "m=video 99999 UDP/TLS/RTP/SAVPF 96", "m=video 9 udp 96", "a=fingerprint:sha-256", "a=fmtp:99 apt=96",
    "a=rtpmap:96", "a=ssrc:", "a=ssrc-group:", "a=extmap:x", "a=rtcp:x", "c=IN IP9 nowhere", "a=sctp-port:x",
    "a=max-message-size:x", "a=ssrc:12 nocolon", "a=rtpmap:96 VP8", "a=candidate:1 1 udp 1 224.0.0.1 9 typ host",
    "a=candidate:garbage", "\ud800",
])
def test_whatever_aiortc_would_choke_on_is_bad_sdp(broken: str) -> None:
    """Each line below made aiortc's parser raise (assert, KeyError, IndexError, StopIteration...)."""
    _refused(BROWSER_OFFER.replace("a=rtpmap:102 H264/90000\n", f"a=rtpmap:102 H264/90000\n{broken}\n"))


def test_offer_candidates_pass_the_trickle_policy_and_count_against_the_cap() -> None:
    used, tcp, private = ("a=candidate:1 1 udp 2122260223 8.8.8.8 5000 typ host",
                          "a=candidate:2 1 tcp 2122260223 8.8.8.8 9 typ host tcptype active",
                          "a=candidate:3 1 udp 2122260223 10.0.0.1 5000 typ host")
    sdp = BROWSER_OFFER.replace("a=mid:0\n", f"a=mid:0\n{used}\n{tcp}\n{private}\n")
    offer = check_offer(sdp, CandidatePolicy(allow_private=False))
    assert offer.candidates == 1 and used in offer.sdp and tcp not in offer.sdp and private not in offer.sdp
    assert check_offer(sdp, CandidatePolicy()).candidates == 2
    many = "".join(f"a=candidate:1 1 udp 1 8.8.8.8 {port} typ host\n" for port in range(1, MAX_CANDIDATES_PER_PEER + 2))
    assert _refused(BROWSER_OFFER.replace("a=mid:0\n", f"a=mid:0\n{many}")).code == "too_many_candidates"


@pytest.mark.parametrize("sdp", [None, 7, {"sdp": "v=0"}, "v=0\r\na=x\x00\r\n"])
def test_an_offer_that_is_not_text_is_bad_sdp(sdp: object) -> None:
    _refused(sdp)


async def test_the_relay_checks_the_offer_before_it_admits_anyone(relay: Relay) -> None:
    with pytest.raises(BadSdpError):
        await relay.join_room("room", "reader", BROWSER_OFFER.replace("a=setup:actpass", "a=setup:holdconn"))
    assert relay.participant_state("reader") is None
