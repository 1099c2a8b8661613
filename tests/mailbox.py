"""Reading the mails the app sent: from its mail folder (no SMTP configured) or from a real local SMTP server
(aiosmtpd), waited for with a bounded timeout."""

from __future__ import annotations

import asyncio
import email
import re
import socket
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LINK = re.compile(r"https?://\S+[?&]token=([A-Za-z0-9_.\-]+)")


def body_of(message: Message) -> str:
    part = message.get_payload(decode=True) if not message.is_multipart() else message.get_payload(0).get_payload(
        decode=True)
    return part.decode() if isinstance(part, bytes) else str(part)


def folder_mails(folder: Path) -> list[Message]:
    if not folder.exists():
        return []
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


async def wait_for_mails(folder: Path, count: int, timeout: float = 15.0) -> list[Message]:
    """At least ``count`` mails in the folder, oldest first (the app's worker writes them)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = folder_mails(folder)
        if len(found) >= count or loop.time() > deadline:
            assert len(found) >= count, f"{len(found)} mails in {folder}, waited for {count}"
            return found
        await asyncio.sleep(0.05)


def token_in(message: Message) -> str:
    match = LINK.search(body_of(message))
    assert match, body_of(message)
    return match.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """A real SMTP server on 127.0.0.1 (aiosmtpd, in its own thread) that keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []
        self._arrived = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.logins: list[str] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, authenticator=self._authenticate,
                                      auth_require_tls=False)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: object) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"tester", b"secret")
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok)

    @property
    def url(self) -> str:
        return f"smtp://tester:secret@127.0.0.1:{self.port}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # aiosmtpd names it
        message = email.message_from_bytes(envelope.content if isinstance(envelope.content, bytes)
                                           else str(envelope.content).encode())
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._arrived.set)
        return "250 OK"

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Message]:
        async def enough() -> None:
            while len(self.messages) < count:
                self._arrived.clear()
                if len(self.messages) >= count:
                    break
                await self._arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return list(self.messages)
