"""Reading offers: media SSRC for PLIs, codecs by payload type, directions."""

from __future__ import annotations

import pytest

from relay import BadSdpError
from relay.sdp import parse_session

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
