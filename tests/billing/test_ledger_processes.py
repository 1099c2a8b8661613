"""Several OS processes charging one wallet at once: never overdrawn, no update lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from billing import ledger
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair

ROOT = Path(__file__).resolve().parents[2]


def test_charges_from_several_processes_never_overdraw_one_wallet(database_url: str) -> None:
    async def seed() -> tuple[str, str]:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            client, reader = await make_pair(pool)
            await ledger.deposit(pool, client_id=client, cents=1000, key="seed")
            return client, reader
        finally:
            await pool.close()

    client, reader = asyncio.run(seed())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # 4 processes x 60 charges of 7 cents = 1680 cents asked of a 1000-cent wallet.
    workers = [subprocess.Popen([sys.executable, "-m", "tests.billing.charge_worker", database_url, client, reader,
                                 "60", "7", f"p{n}"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
               for n in range(4)]
    succeeded = 0
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        succeeded += int(out.strip())
    assert succeeded == 1000 // 7

    async def check() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            assert await ledger.balance(conn, client) == 1000 - 7 * succeeded == 1000 % 7
            assert await ledger.earnings(conn, reader) == succeeded * 4  # split(7) = (4, 3)
            await assert_ledger_invariants(conn)
        finally:
            await conn.close()

    asyncio.run(check())
