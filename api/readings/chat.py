"""A reading's chat: each message admitted by one rule, stored in the transcript, then relayed.

A participant chats over the signaling socket (``chat-message``) or over the media data channel (text the
relay emits as its ``chat-message`` event). Both pass :meth:`ReadingChat.admit`: the reading must be
active, the sender within ``SOULSEER_READING_CHAT_RATE_LIMIT`` messages per :data:`WINDOW_SECONDS` (per
user, whichever path they use), and the text 1 to :data:`MAX_CHARS` characters. A refused data-channel
message is dropped before anything is stored or forwarded, and before any task is started for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from api.core.errors import ApiError, Conflict, Invalid, TooManyRequests
from api.core.keys import DATABASE, SETTINGS
from api.core.ratelimit import RateLimiter
from api.core.times import iso
from api.readings.runtime import ReadingRuntime, participant_id
from api.readings.states import Actor, State
from relay import Relay, RelayError

log = logging.getLogger(__name__)

MAX_CHARS = 2000
WINDOW_SECONDS = 10.0


def clean(text: object) -> str:
    """The message text, or an error naming what is wrong with it."""
    if not isinstance(text, str):
        raise Invalid("text must be a string", field="text")
    text = text.strip()
    if not 1 <= len(text) <= MAX_CHARS:
        raise Invalid(f"text must be 1 to {MAX_CHARS} characters", field="text")
    if "\x00" in text:
        raise Invalid("text must not contain NUL characters", field="text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no transcript row can hold it
        raise Invalid("text is not valid Unicode (a lone surrogate)", field="text") from None
    return text


class ReadingChat:
    """The node's reading chat: the one admission rule, the transcript, and delivery to the other side.

    :param app: the application (its database and settings).
    :param relay: forwards admitted data-channel text to the other participant's data channel.
    :param clock: monotonic seconds for the rate limit (the readings' clock, so a test can hold it still).
    """

    def __init__(self, app: web.Application, relay: Relay, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self._relay = relay
        self._limiter = RateLimiter(app[SETTINGS].reading_chat_rate_limit, WINDOW_SECONDS, clock=clock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}  # per sender: messages are stored and sent in order

    @property
    def pending(self) -> int:
        """Data-channel messages admitted and not yet stored and forwarded."""
        return len(self._tasks)

    def admit(self, runtime: ReadingRuntime, role: Actor, text: object) -> str:
        """The cleaned text if this message may be sent now; else the error (409, 429 or 422) saying why."""
        if runtime.status is not State.ACTIVE:
            raise Conflict("chat opens when the reading is active", code="wrong_state")
        wait = self._limiter.hit(_sender(runtime, role))
        if wait > 0:
            raise TooManyRequests(f"too many chat messages; wait {wait:.0f} s")
        return clean(text)

    async def post(self, runtime: ReadingRuntime, role: Actor, text: object) -> None:
        """A message from the signaling socket: admitted, stored, then ``chat-message`` to both sockets."""
        body = self.admit(runtime, role, text)
        row = await self._store(runtime, role, body)
        runtime.broadcast({"type": "chat-message", "sessionId": runtime.session_id, "id": row["id"],
                           "from": _sender(runtime, role), "role": role.value, "text": body,
                           "at": iso(row["created_at"])})

    def from_data_channel(self, runtime: ReadingRuntime, role: Actor, text: str) -> None:
        """Text the relay received on a participant's data channel: admitted now (a refusal is dropped),
        then stored and forwarded to the other participant's data channel by a task."""
        try:
            body = self.admit(runtime, role, text)
        except ApiError as exc:
            log.debug("data channel chat refused: %s", exc.code,
                      extra={"sessionId": runtime.session_id, "role": role.value})
            return
        sender = _sender(runtime, role)
        task = asyncio.create_task(self._store_and_forward(runtime, role, body, after=self._last.get(sender)),
                                   name=f"reading {runtime.session_id} chat")
        self._tasks.add(task)
        self._last[sender] = task
        task.add_done_callback(lambda t: self._finished(sender, t))

    async def close(self) -> None:
        """Let admitted messages finish (bounded), then cancel what is left."""
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _store_and_forward(self, runtime: ReadingRuntime, role: Actor, body: str, *,
                                 after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after])  # the sender's previous message first (its failure is its own)
        await self._store(runtime, role, body)
        other = Actor.READER if role is Actor.CLIENT else Actor.CLIENT
        try:
            await self._relay.send_chat(participant_id(runtime.session_id, other), body)
        except RelayError:  # the other participant has no peer (yet, or any more): stored all the same
            log.debug("data channel chat not forwarded", extra={"sessionId": runtime.session_id})

    async def _store(self, runtime: ReadingRuntime, role: Actor, body: str) -> Any:
        row = await self._app[DATABASE].pool.fetchrow(
            "INSERT INTO reading_messages (session_id, sender_id, body) VALUES ($1, $2, $3) RETURNING id, created_at",
            runtime.session_id, _sender(runtime, role), body,
        )
        assert row is not None
        return row

    def _finished(self, sender: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._last.get(sender) is task:
            del self._last[sender]
        if not task.cancelled() and task.exception() is not None:
            log.warning("data channel chat not stored: %s", task.exception())


def _sender(runtime: ReadingRuntime, role: Actor) -> str:
    return runtime.client_id if role is Actor.CLIENT else runtime.reader_id
