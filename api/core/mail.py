"""Mail: a durable outbox (``mail_outbox``) and the worker that sends it, by SMTP or into a folder.

A mail is a row written in the transaction of what it reports (:func:`enqueue`): a receipt commits with its
payment, a reminder with its claim, a link with its token; nothing is mailed for what was rolled back. Each node's
:class:`MailWorker` claims due rows (``FOR UPDATE SKIP LOCKED``), sends them and marks them sent; a failure is
tried again later (after 30 s, 1 min, 2 min, ... up to an hour, 10 times).

Transport: with ``SOULSEER_SMTP_URL`` (``smtp://user:password@host:587``, STARTTLS when the server offers it;
``smtps://`` for TLS from the first byte) through aiosmtplib; with nothing configured, each mail is written as
an ``.eml`` file into ``<SOULSEER_DATA_DIR>/mail``, and the log says where, so a developer can open the link.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import asyncpg
from aiohttp import web

from api.core.database import OUTAGE_ERRORS
from api.core.keys import DATABASE, SETTINGS
from api.core.periodic import Periodic
from config import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BATCH = 20


async def enqueue(conn: asyncpg.Connection | asyncpg.Pool, to: str, subject: str, body: str) -> None:
    """Write a mail to the outbox (in the caller's transaction when given one)."""
    await conn.execute("INSERT INTO mail_outbox (to_address, subject, body) VALUES ($1, $2, $3)",
                       to, subject[:200], body[:20000])


async def enqueue_to_user(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, subject: str, body: str) -> bool:
    """Mail a user at their address (never a deleted account); False when there is nobody to mail."""
    row = await conn.fetchrow("SELECT email, display_name FROM users WHERE id = $1 AND deleted_at IS NULL", user_id)
    if row is None:
        return False
    await enqueue(conn, row["email"], subject, f"Hello {row['display_name']},\n\n{body}\n\n-- SoulSeer\n")
    return True


class Transport:
    """Sends one message: by SMTP when a URL is configured, else into the mail folder."""

    def __init__(self, settings: Settings) -> None:
        self.smtp_url = settings.smtp_url
        self.sender = settings.mail_from
        self.folder = Path(settings.data_dir) / "mail"

    def describe(self) -> str:
        if self.smtp_url:
            parts = urlsplit(self.smtp_url)
            return f"SMTP {parts.hostname}:{parts.port or (465 if parts.scheme == 'smtps' else 587)}"
        return f"folder {self.folder.resolve()}"

    def message(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain="soulseer")
        message.set_content(body)
        return message

    async def send(self, message: EmailMessage) -> None:
        if self.smtp_url is None:
            await asyncio.to_thread(self._write, message)
            return
        parts = urlsplit(self.smtp_url)
        options = parse_qs(parts.query)
        implicit_tls = parts.scheme == "smtps"
        starttls = None if options.get("starttls", ["auto"])[0] == "auto" else options["starttls"][0] == "true"
        await aiosmtplib.send(
            message, hostname=parts.hostname or "localhost", port=parts.port or (465 if implicit_tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit_tls, start_tls=None if implicit_tls else starttls, timeout=30)

    def _write(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(bytes(message))
        log.info("mail written to the mail folder", extra={"path": str(path), "to": message["To"]})


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


async def send_due(pool: asyncpg.Pool, transport: Transport, *, now: datetime | None = None) -> int:
    """Send every mail due now; returns how many were sent."""
    sent = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, to_address, subject, body, attempts FROM mail_outbox WHERE sent_at IS NULL"
                " AND attempts < $2 AND next_attempt_at <= coalesce($1, now()) ORDER BY next_attempt_at LIMIT $3"
                " FOR UPDATE SKIP LOCKED", now, MAX_ATTEMPTS, BATCH)
            for row in rows:
                try:
                    await transport.send(transport.message(row["to_address"], row["subject"], row["body"]))
                except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
                    attempts = row["attempts"] + 1
                    log.warning("mail not sent; will retry", extra={"mailId": str(row["id"]), "attempts": attempts,
                                                                     "reason": repr(exc)[:200]})
                    await conn.execute(
                        "UPDATE mail_outbox SET attempts = $2, last_error = $3, next_attempt_at = now() + $4"
                        " WHERE id = $1", row["id"], attempts, repr(exc)[:500], backoff(attempts))
                    continue
                await conn.execute("UPDATE mail_outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = $1",
                                   row["id"])
                sent += 1
        if len(rows) < BATCH:
            return sent


class MailWorker(Periodic):
    """Sends the outbox on this node every ``interval`` seconds, and at once when :meth:`wake` is called (after
    a commit that queued a mail)."""

    def __init__(self, app: web.Application) -> None:
        super().__init__("mail-worker", self.send_now, interval=app[SETTINGS].mail_sweep_interval_seconds,
                         expected=OUTAGE_ERRORS)
        self._app = app
        self.transport = Transport(app[SETTINGS])

    def start(self) -> None:
        log.info("mail is sent by %s", self.transport.describe(), extra={"transport": self.transport.describe()})
        super().start()

    async def send_now(self) -> int:
        return await send_due(self._app[DATABASE].pool, self.transport)


MAIL = web.AppKey("mail_worker", MailWorker)


def setup(app: web.Application) -> None:
    app[MAIL] = worker = MailWorker(app)
    app.cleanup_ctx.append(worker.lifetime)
