"""A separate OS process charging one wallet as fast as it can; prints how many charges went through.

Run by ``test_ledger_processes.py``: ``python -m tests.billing.charge_worker URL CLIENT READER COUNT CENTS NAME``.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from billing import ledger
from billing.errors import InsufficientFunds


async def main(url: str, client: str, reader: str, count: int, cents: int, name: str) -> int:
    pool = await asyncpg.create_pool(url, min_size=4, max_size=4)
    ok = 0

    async def one(i: int) -> None:
        nonlocal ok
        try:
            await ledger.charge(pool, client_id=client, reader_id=reader, cents=cents, key=f"{name}:{i}",
                                kind="gift")
            ok += 1
        except InsufficientFunds:
            pass

    try:
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await pool.close()
    return ok


if __name__ == "__main__":
    url, client, reader, count, cents, name = sys.argv[1:7]
    print(asyncio.run(main(url, client, reader, int(count), int(cents), name)))
