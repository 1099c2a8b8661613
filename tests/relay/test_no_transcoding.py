"""No decoder and no encoder on the forwarding path: a relay process forwards VP8, H.264 and Opus
between endpoints that decode it, while every aiortc codec in the relay's process is counted."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relay.sdp import parse_session
from tests.relay.endpoints import Endpoint

ROOT = Path(__file__).resolve().parents[2]


class RelayProcess:
    """Drives tests/relay/relay_process.py over its stdio."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def call(self, op: str, *args: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({"op": op, "args": list(args)}) + "\n").encode())
        await self.process.stdin.drain()
        reply = json.loads(await asyncio.wait_for(self.process.stdout.readline(), 20))
        assert "error" not in reply, reply
        return reply["result"]


@pytest.fixture
async def relay_process() -> Any:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.relay.relay_process",
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    yield RelayProcess(process)
    if process.returncode is None:
        process.kill()
        await process.wait()


@pytest.mark.slow
async def test_relay_forwards_vp8_h264_and_opus_without_building_any_codec(
    relay_process: RelayProcess, endpoints: Callable[..., Endpoint]
) -> None:
    vp8_reader, vp8_client = endpoints("vp8-reader"), endpoints("vp8-client")
    h264_reader = endpoints("h264-reader", video_codec="H264")
    h264_client = endpoints("h264-client", video_codec="H264")
    rooms = {"vp8": (vp8_reader, vp8_client), "h264": (h264_reader, h264_client)}
    negotiated = {}
    for room, pair in rooms.items():
        for endpoint in pair:
            answer = await relay_process.call("join_room", room, endpoint.name, await endpoint.offer())
            video = next(m for m in parse_session(answer).media if m.kind == "video")
            negotiated[endpoint.name] = video.first_codec
            await endpoint.accept(answer)
    assert negotiated == {
        "vp8-reader": "VP8", "vp8-client": "VP8", "h264-reader": "H264", "h264-client": "H264"
    }
    for endpoint in (vp8_reader, vp8_client, h264_reader, h264_client):
        await endpoint.wait_decoded("video", 20, timeout=20)
        await endpoint.wait_decoded("audio", 20, timeout=20)
    report = await relay_process.call("report")
    await relay_process.call("close")
    assert report["codec_uses"] == {}, f"the relay built or used codecs: {report['codec_uses']}"
    assert not [t for t in report["threads"] if "decoder" in t or "encoder" in t], report["threads"]
    assert report["forwarded"]["video"]["frames"] >= 80 and report["forwarded"]["audio"]["frames"] >= 80


async def test_the_witness_is_not_blind(relay_process: RelayProcess) -> None:
    """The same counting, in the same kind of process, sees a decoder when one is built."""
    report = await relay_process.call("probe")
    await relay_process.call("close")
    assert report["codec_uses"] == {"Vp8Decoder.__init__": 1}
