"""``soulseer ledger verify`` as a real process on a real database: exit 0 when sound, 1 with the offending rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from billing import ledger
from tests.billing.people import make_user

ROOT = Path(__file__).resolve().parents[3]


def _verify(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "SOULSEER_LOG_JSON": "false"}
    return subprocess.run([sys.executable, "-m", "api.cli", "ledger", "verify", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


async def test_ledger_verify_passes_a_sound_ledger_and_names_the_rows_of_a_broken_one(
        pool: asyncpg.Pool, database_url: str) -> None:
    client = await make_user(pool)
    await ledger.deposit(pool, client_id=client, cents=1_000, key="dep")
    sound = _verify(database_url)
    assert sound.returncode == 0, sound.stderr
    assert "every invariant holds" in sound.stdout
    await pool.execute("UPDATE client_balances SET balance_cents = 1500 WHERE client_id = $1", client)
    try:
        broken = _verify(database_url, "--json")
        assert broken.returncode == 1
        result = json.loads(broken.stdout)
        [violation] = [v for v in result["violations"] if v["rule"] == "cached_balance"]
        assert violation["rows"] == [{"client_id": client, "balance_cents": 1500, "entries": 1000}]
        assert "conservation" not in {v["rule"] for v in result["violations"]}
        text = _verify(database_url)
        assert text.returncode == 1 and "VIOLATION [cached_balance]" in text.stderr and client in text.stderr
    finally:
        await pool.execute("UPDATE client_balances SET balance_cents = 1000 WHERE client_id = $1", client)
