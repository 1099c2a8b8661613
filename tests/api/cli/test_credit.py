"""``soulseer credit``: an operator's audited credit, run as a real subprocess."""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg

from tests.api.cli.test_main import SOULSEER, _env
from tests.billing.people import make_user


def credit(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOULSEER, "credit", *args], env=_env(DATABASE_URL=database_url, SOULSEER_LOG_JSON="false"),
                          capture_output=True, text=True, timeout=60)


def test_credit_adds_to_a_wallet_through_the_ledger_with_reason_and_operator(database_url: str) -> None:
    async def seed() -> str:
        conn = await asyncpg.connect(database_url)
        try:
            client = await make_user(conn, "client")
            return str(await conn.fetchval("SELECT email FROM users WHERE id = $1", client))
        finally:
            await conn.close()

    email = asyncio.run(seed())
    for _ in range(2):  # the same --key credits once
        result = credit(database_url, email.upper(), "1250", "--reason", "goodwill for ticket 42",
                        "--operator", "ops-alice", "--key", "ticket-42")
        assert result.returncode == 0, result.stderr
    assert "balance now 1250 cents" in result.stdout and "already credited" in result.stdout

    async def check() -> asyncpg.Record:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchrow(
                "SELECT t.kind, t.source, t.operator, t.memo, b.balance_cents FROM ledger_transactions t"
                " JOIN client_balances b ON b.client_id = t.client_id WHERE t.key = 'ticket-42'")
        finally:
            await conn.close()

    assert tuple(asyncio.run(check())) == ("deposit", "manual", "ops-alice", "goodwill for ticket 42", 1250)


def test_credit_refuses_unknown_accounts_and_bad_amounts(database_url: str) -> None:
    unknown = credit(database_url, "nobody@example.test", "100", "--reason", "x")
    assert unknown.returncode == 1 and "no client account" in unknown.stderr
    negative = credit(database_url, "nobody@example.test", "-5", "--reason", "x")
    assert negative.returncode == 2
    no_reason = subprocess.run([*SOULSEER, "credit", "a@example.test", "5"], env=_env(DATABASE_URL=database_url),
                               capture_output=True, text=True, timeout=60)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
