"""A reading's chat: each message stored in the transcript, then relayed to both participants."""

from __future__ import annotations

import asyncpg

from api.errors import Conflict, Invalid
from api.reading_runtime import ReadingRuntime
from api.reading_states import Actor, State
from api.reading_store import iso

MAX_CHARS = 2000


def clean(text: object) -> str:
    """The message text, or an error naming what is wrong with it."""
    if not isinstance(text, str):
        raise Invalid("text must be a string", field="text")
    text = text.strip()
    if not 1 <= len(text) <= MAX_CHARS:
        raise Invalid(f"text must be 1 to {MAX_CHARS} characters", field="text")
    if "\x00" in text:
        raise Invalid("text must not contain NUL characters", field="text")
    return text


async def post(pool: asyncpg.Pool, runtime: ReadingRuntime, role: Actor, text: object, *,
               relay_it: bool = True) -> None:
    """Store a participant's message and send ``chat-message`` {from, role, text, at} to both sides.

    ``relay_it=False`` for text that came over the media data channel: the relay already forwarded it to
    the other participant's data channel, so it is only stored.
    """
    if runtime.status is not State.ACTIVE:
        raise Conflict("chat opens when the reading is active", code="wrong_state")
    body = clean(text)
    sender = runtime.client_id if role is Actor.CLIENT else runtime.reader_id
    row = await pool.fetchrow(
        "INSERT INTO reading_messages (session_id, sender_id, body) VALUES ($1, $2, $3) RETURNING id, created_at",
        runtime.session_id, sender, body,
    )
    assert row is not None
    if not relay_it:
        return
    runtime.broadcast({"type": "chat-message", "sessionId": runtime.session_id, "id": row["id"], "from": sender,
                       "role": role.value, "text": body, "at": iso(row["created_at"])})
