"""A signaling WebSocket client for tests: collects every server message and waits for the ones asked for."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

Match = Callable[[dict[str, Any]], bool]


class SignalingClient:
    """One tab's ``/ws`` connection. ``wait`` returns the first not-yet-taken message of a type that matches."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self._taken = 0
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, client: TestClient, headers: dict[str, str]) -> SignalingClient:
        return cls(await client.ws_connect("/ws", headers=headers))

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            async with self._changed:
                self.received.append(json.loads(message.data))
                self._changed.notify_all()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("type") == kind]

    async def wait(self, kind: str, match: Match | None = None, *, timeout: float = 10.0) -> dict[str, Any]:
        """The first message of ``kind`` (matching ``match``) received so far or within ``timeout`` seconds."""

        def found() -> dict[str, Any] | None:
            for message in self.received:
                if message.get("type") == kind and (match is None or match(message)):
                    return message
            return None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        message = found()
        assert message is not None
        return message

    async def wait_count(self, kind: str, count: int, match: Match | None = None, *,
                         timeout: float = 10.0) -> list[dict[str, Any]]:
        def matching() -> list[dict[str, Any]]:
            return [m for m in self.received if m.get("type") == kind and (match is None or match(m))]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count), timeout)
        return matching()

    async def join_stream(self, stream_id: str) -> dict[str, Any]:
        await self.send({"type": "join", "streamId": stream_id})
        return await self.wait("joined", lambda m: m.get("streamId") == stream_id)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
