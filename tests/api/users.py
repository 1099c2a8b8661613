"""Accounts for tests that are about something else: made straight in the database, logged in with a bearer token.

Registering through the API costs an argon2 hash and a verify (seconds on a loaded 2-core machine); these
accounts share one hash computed once, so a test can have a dozen users for free. Registration itself is
tested in test_auth.py.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from api.accounts.auth import start_login
from api.accounts.login import insert_account
from api.core.keys import DATABASE
from tests.api.helpers import PASSWORD


@functools.cache
def _password_hash() -> str:
    return PasswordHasher().hash(PASSWORD)


async def quick_user(client: TestClient, role: str = "client", *, name: str | None = None
                     ) -> tuple[dict[str, Any], dict[str, str]]:
    """A new account (with its wallet or reader rows, as registration makes them) and its bearer header."""
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.test"
    display_name = name or role.title()
    pool = client.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        user_id = str((await insert_account(conn, email, _password_hash(), display_name, role))["id"])
        token, _ = await start_login(conn, user_id, user_agent="tests", address=None)
    user = {"id": user_id, "email": email, "displayName": display_name, "role": role}
    return user, {"Authorization": f"Bearer {token}"}
