"""Keyframe recognition and the upstream request throttle (unit level; PLI end to end: test_stream)."""

from __future__ import annotations

import asyncio
import itertools
import time

from relay.keyframes import KeyframeRequester, is_keyframe


def test_vp8_keyframes_are_recognised_by_frame_tag_and_start_code() -> None:
    assert is_keyframe("VP8", b"\x10\x02\x00\x9d\x01\x2a\x00")
    assert not is_keyframe("VP8", b"\x11\x02\x00\x00\x00\x00\x00")
    assert not is_keyframe("VP8", b"\x10")


def test_h264_access_units_with_an_idr_slice_are_keyframes() -> None:
    sps, pps, idr, slice_ = b"\x67\x42", b"\x68\xce", b"\x65\x88", b"\x41\x9a"
    assert is_keyframe("H264", b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x01" + idr)
    assert not is_keyframe("H264", b"\x00\x00\x00\x01" + slice_)


def test_every_audio_frame_is_a_keyframe() -> None:
    assert is_keyframe("OPUS", b"\xfc")


async def test_requests_within_the_interval_are_coalesced_into_one_deferred_request() -> None:
    sent: list[float] = []
    fired = asyncio.Event()

    def send() -> None:
        sent.append(time.monotonic())
        fired.set()

    requester = KeyframeRequester(send, interval=0.2)
    requester.request("join")
    assert len(sent) == 1, "the first request goes out at once"
    fired.clear()
    for _ in range(50):
        requester.request("join")  # a burst of joiners
    assert len(sent) == 1
    await asyncio.wait_for(fired.wait(), 2)
    assert len(sent) == 2
    assert sent[1] - sent[0] >= 0.19
    assert requester.requests == 51 and requester.sent == 2
    requester.close()


async def test_a_keyframe_that_arrives_first_cancels_the_pending_request() -> None:
    sent: list[str] = []
    requester = KeyframeRequester(lambda: sent.append("pli"), interval=0.1)
    requester.request("join")
    requester.request("join")  # deferred
    requester.keyframe_seen()
    await asyncio.sleep(0.2)  # past the interval: the deferred request must not have fired
    assert sent == ["pli"]


async def test_requests_never_exceed_one_per_interval_under_a_storm() -> None:
    sent: list[float] = []
    requester = KeyframeRequester(lambda: sent.append(time.monotonic()), interval=0.1)
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        requester.request("pli")  # a subscriber sending PLI every 10 ms
        await asyncio.sleep(0.01)
    requester.close()
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert 4 <= len(sent) <= 7
    assert all(gap >= 0.099 for gap in gaps), gaps
