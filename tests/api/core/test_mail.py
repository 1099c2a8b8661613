"""Mail: through a real SMTP server (aiosmtpd on 127.0.0.1, with a login) when SOULSEER_SMTP_URL is set, into the
mail folder when nothing is configured (and the log says where), retried after a failure, sent once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.core import mail
from config import Settings, load_settings
from config.settings import SettingsError
from tests.api.helpers import register
from tests.mailbox import Inbox, body_of, free_port, token_in, wait_for_mails


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    server = Inbox()
    yield server
    server.stop()


async def test_mail_goes_through_a_real_smtp_server_when_configured(settings: Settings, inbox: Inbox) -> None:
    inbox.start()
    app = create_app(replace(settings, smtp_url=inbox.url, mail_from="SoulSeer <hello@soulseer.test>"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        user = await register(http, "client", name="Ada")
        [message] = await inbox.wait_for(1)
    assert message["To"] == user["email"] and message["X-Envelope-To"] == user["email"]
    assert message["From"] == "SoulSeer <hello@soulseer.test>"
    assert message["Subject"] == "Confirm your e-mail address for SoulSeer"
    assert "/verify-email?token=" in body_of(message) and token_in(message).count(".") == 2
    assert inbox.logins  # it logged in with the URL's user and password
    assert not (settings.data_dir / "mail").exists()


async def test_with_nothing_configured_mail_is_written_to_the_data_folder_and_logged(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="api.core.mail")
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        user = await register(http, "reader", name="Luna")
        [message] = await wait_for_mails(settings.data_dir / "mail", 1)
    assert message["To"] == user["email"]
    folder = str((settings.data_dir / "mail").resolve())
    assert any(folder in r.getMessage() for r in caplog.records if r.name == "api.core.mail")
    assert any(getattr(r, "path", "").startswith(folder) for r in caplog.records)


async def test_a_failed_send_is_tried_again_later_and_sent_once(settings: Settings, pool: asyncpg.Pool,
                                                                inbox: Inbox) -> None:
    await mail.enqueue(pool, "someone@example.test", "Hello", "First try fails.")
    closed = mail.Transport(replace(settings, smtp_url=f"smtp://127.0.0.1:{free_port()}"))
    assert await mail.send_due(pool, closed) == 0
    row = await pool.fetchrow("SELECT attempts, sent_at, last_error, next_attempt_at > now() AS later FROM mail_outbox")
    assert row["attempts"] == 1 and row["sent_at"] is None and row["last_error"] and row["later"]
    inbox.start()
    working = mail.Transport(replace(settings, smtp_url=inbox.url))
    assert await mail.send_due(pool, working) == 0  # not due yet
    await pool.execute("UPDATE mail_outbox SET next_attempt_at = now()")
    assert await mail.send_due(pool, working) == 1
    assert await mail.send_due(pool, working) == 0
    assert [m["Subject"] for m in await inbox.wait_for(1)] == ["Hello"]


def test_the_smtp_url_and_sender_are_checked_at_start_up() -> None:
    assert load_settings({"SOULSEER_SMTP_URL": "smtps://u:p@mail.example:465"}).smtp_url == "smtps://u:p@mail.example:465"
    for name, value in (("SOULSEER_SMTP_URL", "http://mail.example"), ("SOULSEER_MAIL_FROM", "no address"),
                        ("SOULSEER_MAIL_FROM", "a@b.c\nBcc: x@y.z")):
        with pytest.raises(SettingsError) as refused:
            load_settings({name: value})
        assert refused.value.variable == name


def test_folder_transport_names_its_folder(settings: Settings, tmp_path: Path) -> None:
    transport = mail.Transport(replace(settings, data_dir=tmp_path))
    assert transport.describe() == f"folder {(tmp_path / 'mail').resolve()}"
