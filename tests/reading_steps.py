"""Steps reading tests share: a reader and a client with money, a request accepted, signaling sockets that
wait for the message they expect, and an app whose readings run on a clock the test moves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from api.accounts.auth import start_login
from api.accounts.login import insert_account
from api.app import create_app
from api.core.keys import RELAY
from api.readings.live import LIVE_READINGS, LiveReadings
from billing import ledger
from config import Settings


class ManualClock:
    """Monotonic time that moves only when the test says so; readings tick as soon as it passes a second."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Party:
    user: dict[str, Any]
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return str(self.user["id"])


@contextlib.asynccontextmanager
async def running_app(settings: Settings, clock: Callable[[], float] | None = None,
                      lease_clock: Callable[[], float] | None = None, **overrides: Any) -> AsyncIterator[TestClient]:
    """The whole app on a real port, with settings overrides and, optionally, readings on a manual clock
    (and their leases on another)."""
    app = create_app(replace(settings, **overrides))
    if clock is not None or lease_clock is not None:
        app[LIVE_READINGS] = LiveReadings(app, app[RELAY], clock=clock or time.monotonic,
                                          lease_clock=lease_clock or time.monotonic)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def deposit(pool: asyncpg.Pool, client_id: str, cents: int) -> None:
    await ledger.deposit(pool, client_id=client_id, cents=cents, key=f"test-deposit:{uuid.uuid4()}", source="manual")


# Not a usable password hash: these accounts log in through start_login below, never with a password
# (argon2 costs about a second per hash on a busy CI machine; registration and login have their own tests).
_NO_PASSWORD = "$argon2id$v=19$m=65536,t=3,p=4$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo"


async def quick_user(pool: asyncpg.Pool, role: str, name: str | None = None) -> Party:
    """An account with its wallet or reader rows, and a bearer login, made straight in the database."""
    async with pool.acquire() as conn, conn.transaction():
        row = await insert_account(conn, f"{role}-{uuid.uuid4().hex[:10]}@example.test", _NO_PASSWORD,
                                   name or role.title(), role)
        token, _ = await start_login(conn, str(row["id"]), user_agent="tests", address="127.0.0.1")
    user = {"id": str(row["id"]), "email": row["email"], "displayName": row["display_name"], "role": role}
    return Party(user, {"Authorization": f"Bearer {token}"})


async def reader_and_client(http: TestClient, pool: asyncpg.Pool, *, rates: dict[str, Any] | None = None,
                            balance: int = 10_000, online: bool = True) -> tuple[Party, Party]:
    reader = await quick_user(pool, "reader", "Madame Iris")
    client = await quick_user(pool, "client", "Sam")
    resp = await http.post("/api/webrtc/reader/rates", headers=reader.headers,
                           json=rates or {"chatCents": 120, "audioCents": 180, "videoCents": 240,
                                          "flatCents": {"15": 2500, "30": 4500, "45": 6000, "60": 7500}})
    assert resp.status == 200, await resp.text()
    if online:
        resp = await http.post("/api/webrtc/reader/availability", headers=reader.headers, json={"status": "online"})
        assert resp.status == 200
    if balance:
        await deposit(pool, client.id, balance)
    return reader, client


async def rate_shown(http: TestClient, client: Party, reader: Party, session_type: str = "chat") -> int:
    """The per-minute rate a client is shown for a reader (the list of available readers), to confirm it."""
    resp = await http.get("/api/webrtc/client/available-readers", headers=client.headers)
    shown = next((r for r in (await resp.json())["readers"] if r["id"] == reader.id), None)
    return int(shown["rates"][f"{session_type}Cents"]) if shown is not None else 0


async def request_session(http: TestClient, client: Party, reader: Party, session_type: str = "chat",
                          status: int = 201, expected_cents: int | None = None) -> dict[str, Any]:
    """Ask for a reading at the rate the client is shown (or at ``expected_cents``)."""
    if expected_cents is None:
        expected_cents = await rate_shown(http, client, reader, session_type)
    resp = await http.post("/api/webrtc/client/request-session", headers=client.headers,
                           json={"readerId": reader.id, "sessionType": session_type, "expectedCents": expected_cents})
    body = await resp.json()
    assert resp.status == status, body
    return body


async def accept(http: TestClient, reader: Party, session_id: str, status: int = 200) -> dict[str, Any]:
    resp = await http.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=reader.headers)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def accepted_session(http: TestClient, reader: Party, client: Party, session_type: str = "chat") -> str:
    session_id = str((await request_session(http, client, reader, session_type))["session"]["id"])
    await accept(http, reader, session_id)
    return session_id


async def video_reading(http: TestClient | aiohttp.ClientSession, reader: Party, client: Party, rate: int, *,
                        accepted: bool = True) -> str:
    """A video reading at ``rate`` a minute, over HTTP (a test app or a real node): the reader's rate set and
    online, the client's request made (at that rate) and, with ``accepted``, the reader's accept. Its id."""
    resp = await http.post("/api/webrtc/reader/rates", headers=reader.headers, json={"videoCents": rate})
    assert resp.status == 200, await resp.text()
    resp = await http.post("/api/webrtc/reader/availability", headers=reader.headers, json={"status": "online"})
    assert resp.status == 200, await resp.text()
    resp = await http.post("/api/webrtc/client/request-session", headers=client.headers,
                           json={"readerId": reader.id, "sessionType": "video", "expectedCents": rate})
    assert resp.status == 201, await resp.text()
    session_id = str((await resp.json())["session"]["id"])
    if accepted:
        resp = await http.post(f"/api/webrtc/reader/accept-session/{session_id}", headers=reader.headers)
        assert resp.status == 200, await resp.text()
    return session_id


def at_least(low: int) -> Callable[[Any], bool]:
    """A field match for :meth:`Signal.expect` on the real clock, where a late tick may skip a second."""
    return lambda found: isinstance(found, int) and found >= low


class Signal:
    """A signaling socket as a test drives it: send messages, wait for the one expected."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self._unread: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, http: TestClient, party: Party, **kwargs: Any) -> Signal:
        return cls(await http.ws_connect("/ws", headers=party.headers, **kwargs))

    async def send(self, type: str, **fields: Any) -> None:
        await self.ws.send_str(json.dumps({"type": type, **fields}))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        if self._unread:
            return self._unread.pop(0)
        message = await self.ws.receive(timeout=timeout)
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket closed: {message.type} {self.ws.close_code}")
        body = json.loads(message.data)
        self.seen.append(body)
        return body

    async def expect(self, type: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next message of ``type`` whose fields equal ``match`` (or pass it, where a value is a predicate
        such as :func:`at_least`); others are skipped (kept in ``seen``)."""

        def fits(found: Any, wanted: Any) -> bool:
            return bool(wanted(found)) if callable(wanted) else found == wanted

        async def find() -> dict[str, Any]:
            while True:
                body = await self.receive(timeout=timeout)
                if body.get("type") == type and all(fits(body.get(k), v) for k, v in match.items()):
                    return body

        return await asyncio.wait_for(find(), timeout)

    async def join(self, session_id: str) -> dict[str, Any]:
        await self.send("join", sessionId=session_id)
        return await self.expect("joined")

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the socket; returns the close code it sent."""

        async def drain() -> int | None:
            while True:
                message = await self.ws.receive()
                if message.type is aiohttp.WSMsgType.CLOSE:
                    return int(message.data)  # the server's code (close_code may say 1006 after the reply)
                if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    return self.ws.close_code
                if message.type is aiohttp.WSMsgType.TEXT:
                    self.seen.append(json.loads(message.data))

        return await asyncio.wait_for(drain(), timeout)

    async def close(self) -> None:
        await self.ws.close()


async def started_reading(http: TestClient, pool: asyncpg.Pool,
                          session_type: str = "chat") -> tuple[str, Party, Party, Signal, Signal]:
    """A reading accepted, joined by both sides and started: (session id, client, reader, their sockets)."""
    reader, client = await reader_and_client(http, pool)
    session_id = await accepted_session(http, reader, client, session_type)
    client_ws, reader_ws = await join_and_start(http, session_id, client, reader)
    return session_id, client, reader, client_ws, reader_ws


async def join_and_start(http: TestClient, session_id: str, client: Party, reader: Party) -> tuple[Signal, Signal]:
    """Both sides join an accepted reading; their sockets (client's, reader's), once it has started."""
    client_ws, reader_ws = await Signal.open(http, client), await Signal.open(http, reader)
    await client_ws.join(session_id)
    await reader_ws.join(session_id)
    await client_ws.expect("start-session")
    return client_ws, reader_ws


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll an async condition until it holds, or fail after ``timeout`` seconds."""

    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(interval)

    await asyncio.wait_for(poll(), timeout)


async def session_row(pool: asyncpg.Pool, session_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM rtc_sessions WHERE id = $1", session_id)
    assert row is not None
    return row


async def lease_owner(pool: asyncpg.Pool, session_id: str, timeout: float = 10.0) -> str:
    """The node running a reading (its lease's owner), once one does: in a cluster its home starts it when told
    over the bus, a moment after the accept."""

    async def running() -> bool:
        return (await session_row(pool, session_id))["lease_owner"] is not None

    await wait_for(running, timeout=timeout, interval=0.05)
    return str((await session_row(pool, session_id))["lease_owner"])


async def relogin(pool: asyncpg.Pool, party: Party) -> Party:
    """A second login of the same account (another tab, or a reconnecting one)."""
    async with pool.acquire() as conn:
        token, _ = await start_login(conn, party.id, user_agent="tests", address="127.0.0.1")
    return Party(party.user, {"Authorization": f"Bearer {token}"})
