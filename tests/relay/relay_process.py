"""A relay in its own process, with every codec in aiortc counted: the no-transcoding witness.

Test endpoints in the parent process encode and decode (they play browsers); here nothing may.
Before the relay is imported, every aiortc encoder and decoder class is wrapped to count
construction and use, and every thread start is recorded.

Protocol on stdio, one JSON object per line: ``{"op": "join_room", "args": [...]}`` ->
``{"result": ...}`` or ``{"error": code}``; ops: join_room, publish_stream, watch_stream, report,
probe, close.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections import Counter
from typing import Any

from aiortc import codecs

USES: Counter[str] = Counter()
THREADS: list[str] = []


def _count(cls: type, method: str) -> None:
    original = getattr(cls, method)

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        USES[f"{cls.__name__}.{method}"] += 1
        return original(self, *args, **kwargs)

    setattr(cls, method, counted)


def install_guards() -> None:
    for name in dir(codecs):
        cls = getattr(codecs, name)
        if isinstance(cls, type) and cls not in (codecs.Encoder, codecs.Decoder):
            if issubclass(cls, codecs.Encoder):
                _count(cls, "__init__")
                _count(cls, "encode")
            elif issubclass(cls, codecs.Decoder):
                _count(cls, "__init__")
                _count(cls, "decode")
    start = threading.Thread.start

    def recorded_start(self: threading.Thread) -> None:
        THREADS.append(self.name)
        start(self)

    threading.Thread.start = recorded_start  # type: ignore[method-assign]


async def serve() -> None:
    from relay import Relay, RelayError

    relay = Relay(ice_servers=[])
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        op = request["op"]
        reply: dict[str, Any]
        if op == "probe":
            # Proves the counting works: build one decoder the way aiortc's receiver would.
            from aiortc.rtcrtpparameters import RTCRtpCodecParameters

            codecs.get_decoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97))
            reply = {"result": {"codec_uses": dict(USES)}}
        elif op == "report":
            forwarded = {kind: vars(c) for kind, c in relay.metrics.forwarded.items()}
            reply = {"result": {"codec_uses": dict(USES), "threads": THREADS, "forwarded": forwarded}}
        elif op == "close":
            await relay.close()
            print(json.dumps({"result": None}), flush=True)
            break
        else:
            try:
                reply = {"result": await getattr(relay, op)(*request["args"])}
            except RelayError as exc:
                reply = {"error": exc.code}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    install_guards()
    asyncio.run(serve())
