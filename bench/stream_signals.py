"""How the bench's publisher and viewers reach a live stream on each server bench/vs_janus.py compares.

Only the signaling differs between the systems; the peers (bench/fanout_peers.py) are the same:

- :class:`SoulSeerSignal`: SoulSeer's stream contract on ``soulseer serve`` (DESIGN section 5): a signaling
  WebSocket ``/ws`` with a bearer token, ``join {streamId}``, then ``offer {sdp}`` answered by ``answer {sdp}``.
  The socket stays open (it is how the server counts the viewer), read by a task that drops what it gets.
- :class:`JanusSignal`: Janus's VideoRoom over its HTTP transport: a session per process, a handle per peer,
  events by long poll. The publisher offers (``joinandconfigure``); a subscriber ``join``s and gets Janus's
  offer, and answers it with ``start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import aiohttp

from bench.fanout_peers import REFUSALS, Refused, Viewer


class SoulSeerSignal:
    """Joins one live stream of ``soulseer serve`` at ``base``, one signaling socket per peer."""

    def __init__(self, base: str, stream_id: str, tokens: list[str]) -> None:
        self._base = base
        self._stream_id = stream_id
        self._tokens = list(tokens)
        self._session: aiohttp.ClientSession | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def _socket(self) -> aiohttp.ClientWebSocketResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(self._base)
        token = self._tokens.pop(0)
        ws = await self._session.ws_connect("/ws", headers={"Authorization": f"Bearer {token}"}, heartbeat=None)
        self._sockets.append(ws)
        await ws.send_json({"type": "join", "streamId": self._stream_id})
        return ws

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, offer: str) -> str:
        await ws.send_json({"type": "offer", "sdp": offer})
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if data["type"] == "answer":
                self._drain(ws)
                return str(data["sdp"])
            if data["type"] == "error":
                if data.get("code") in REFUSALS:
                    raise Refused(data["code"])
                raise RuntimeError(f"soulseer: {data}")
        raise RuntimeError("soulseer: the signaling socket closed before the answer")

    def _drain(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async def read() -> None:
            async for _ in ws:
                pass

        task = asyncio.ensure_future(read())
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def publish(self, offer: str) -> str:
        return await self._answer(await self._socket(), offer)

    async def watch(self, viewer: Viewer) -> None:
        ws = await self._socket()
        await viewer.offer_and_accept(lambda offer: self._answer(ws, offer))

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        for task in list(self._readers):
            task.cancel()
        if self._session is not None:
            await self._session.close()


class JanusSignal:
    """Joins VideoRoom ``room`` of the Janus at ``base`` (its HTTP transport, e.g. http://127.0.0.1:8088/janus)."""

    def __init__(self, base: str, room: int) -> None:
        self._base = base
        self._room = room
        self._http: aiohttp.ClientSession | None = None
        self._session_id: int | None = None
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._http is not None
        async with self._http.post(f"{self._base}{path}", json={**body, "transaction": uuid.uuid4().hex}) as resp:
            reply: dict[str, Any] = await resp.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"janus: {reply['error']}")
        return reply

    async def _start(self) -> None:
        async with self._starting:  # viewers join in concurrent groups: one session for all of them
            if self._http is None:
                self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=90))
                created = await self._post("", {"janus": "create"})
                self._session_id = int(created["data"]["id"])
                self._poller = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        # One long poll for every handle of the session; its replies also keep the session alive.
        assert self._http is not None
        while True:
            try:
                async with self._http.get(f"{self._base}/{self._session_id}?maxev=50") as resp:
                    events = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            for event in events if isinstance(events, list) else [events]:
                handle = event.get("sender")
                if handle in self._events:
                    self._events[handle].put_nowait(event)

    async def _handle(self) -> int:
        await self._start()
        attached = await self._post(f"/{self._session_id}", {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        handle = int(attached["data"]["id"])
        self._events[handle] = asyncio.Queue()
        return handle

    async def _request(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a plugin request and wait for its event (with Janus's jsep, if any)."""
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        reply = await self._post(f"/{self._session_id}/{handle}", message)
        if reply.get("janus") == "success":  # a synchronous request
            return dict(reply.get("plugindata", {}).get("data", {}))
        while True:
            event = await asyncio.wait_for(self._events[handle].get(), 60)
            if event.get("janus") != "event":
                continue  # webrtcup, media, hangup...
            data = dict(event["plugindata"]["data"])
            if "error" in data:
                raise RuntimeError(f"janus: {data['error']}")
            if "jsep" in event:
                data["jsep"] = event["jsep"]
            return data

    async def create_room(self) -> None:
        handle = await self._handle()
        await self._request(handle, {"request": "create", "room": self._room, "publishers": 1, "bitrate": 0,
                                     "fir_freq": 0, "audiocodec": "opus", "videocodec": "vp8",
                                     "notify_joining": False})

    async def publish(self, offer: str) -> str:
        handle = await self._handle()
        joined = await self._request(
            handle, {"request": "joinandconfigure", "room": self._room, "ptype": "publisher", "display": "bench",
                     "audio": True, "video": True}, {"type": "offer", "sdp": offer})
        self.feed = int(joined["id"])
        return str(joined["jsep"]["sdp"])

    async def watch(self, viewer: Viewer, feed: int) -> None:
        handle = await self._handle()
        try:
            attached = await self._request(handle, {"request": "join", "room": self._room, "ptype": "subscriber",
                                                    "streams": [{"feed": feed}]})
        except RuntimeError as exc:
            if "No such feed" in str(exc):  # Janus dropped its publisher (overloaded): counted, not fatal
                raise Refused("publisher_gone") from exc
            raise
        answer = await viewer.answer_offer(attached["jsep"]["sdp"])
        await self._request(handle, {"request": "start"}, {"type": "answer", "sdp": answer})

    async def feeds(self) -> list[int]:
        """The ids of the room's publishers."""
        handle = await self._handle()
        listed = await self._request(handle, {"request": "listparticipants", "room": self._room})
        return [int(p["id"]) for p in listed.get("participants", []) if p.get("publisher")]

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._http is not None:
            if self._session_id is not None:
                with contextlib.suppress(aiohttp.ClientError, RuntimeError):
                    await self._post(f"/{self._session_id}", {"janus": "destroy"})
            await self._http.close()


def janus_config(folder: str, *, port: int, address: str, event_loops: int) -> str:
    """Write a Janus configuration into ``folder``: VideoRoom only, HTTP on loopback, ICE on ``address``.

    Everything else Debian's package ships is disabled (other plugins, transports, event handlers,
    loggers, the admin API). Returns the path of janus.jcfg.
    """
    lib = "/usr/lib/x86_64-linux-gnu/janus"
    other_plugins = ["audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "sip", "streaming",
                     "textroom", "videocall", "voicemail"]
    other_transports = ["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"]
    files = {
        "janus.jcfg": f"""
general: {{
    configs_folder = "{folder}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 3
    session_timeout = 120
    event_loops = {event_loops}
    protected_folders = ["/bin", "/boot", "/dev", "/etc", "/initrd", "/lib", "/lib32", "/lib64", "/proc", "/sbin",
                         "/sys", "/usr", "/var"]
}}
media: {{
    ipv6 = false
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{address}"
}}
plugins: {{
    disable = "{",".join(f"libjanus_{name}.so" for name in other_plugins)}"
}}
transports: {{
    disable = "{",".join(f"libjanus_{name}.so" for name in other_transports)}"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
}}
""",
        "janus.transport.http.jcfg": f"""
general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
""",
        "janus.plugin.videoroom.jcfg": """
general: {
}
""",
    }
    for name, text in files.items():
        with open(f"{folder}/{name}", "w") as out:
            out.write(text)
    return f"{folder}/janus.jcfg"
