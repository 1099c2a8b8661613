"""Ledger throughput: per-minute charges per second from many concurrent readings, against PostgreSQL.

Creates its own scratch database on the server (dropped at the end), N client/reader pairs with funded
wallets, then for ``--seconds`` each runs, one after another, with ``--sessions`` concurrent readings
charging minute after minute as fast as the database allows:

- ``naive UPDATE`` (baseline): one ``UPDATE client_balances ... WHERE balance_cents >= x`` per charge: no
  ledger entries, no idempotency, what the cheapest possible wallet would cost.
- ``ledger.charge``: the ledger's charge (idempotency key, transaction row, 3 balanced entries checked by
  the deferred trigger, wallet row), one statement.
- ``recovery.charge_minute``: what a reading really does each minute: the charge plus the reading's
  ``rtc_sessions`` row, in one statement.
- ``... batched``: the same two through ``billing.batcher.ChargeBatcher`` (group commit: the charges
  waiting at one moment share a round trip and a commit).

Prints charges/s, p50/p99 latency and each one's throughput relative to the baseline measured in the same
run. On a shared machine wall-clock throughput mostly measures the neighbours, so it also prints the CPU
time each charge costs (the PostgreSQL backends of the pool, read from /proc when the server is local, plus
this process) and the rate that CPU cost allows on all of the machine's cores.

    python bench/ledger.py --help
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.core.migrations import migrate
from bench.scratch import create_database, drop_database
from billing import ledger, recovery
from billing.batcher import ChargeBatcher

RATE_CENTS = 199
Charge = Callable[[asyncpg.Pool, int, int], Awaitable[None]]


async def _setup(url: str, sessions: int) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        readings = []
        for n in range(sessions):
            client, reader = [await conn.fetchval(
                "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, 'x', $2, $3)"
                " RETURNING id::text", f"{role}{n}-{uuid.uuid4().hex[:6]}@bench.test", role, role)
                for role in ("client", "reader")]
            session = await conn.fetchval(
                "INSERT INTO rtc_sessions (client_id, reader_id, session_type, status, rate_cents, started_at)"
                " VALUES ($1, $2, 'video', 'active', $3, now()) RETURNING id::text", client, reader, RATE_CENTS)
            await ledger.deposit(conn, client_id=client, cents=10**11, key=f"bench:seed:{client}")
            readings.append((str(session), str(client), str(reader)))
        return readings
    finally:
        await conn.close()


def _variants(readings: list[tuple[str, str, str]], run: str, batcher: ChargeBatcher) -> dict[str, Charge]:
    async def naive(pool: asyncpg.Pool, reading: int, minute: int) -> None:
        _, client, _ = readings[reading]
        await pool.execute("UPDATE client_balances SET balance_cents = balance_cents - $2, updated_at = now()"
                           " WHERE client_id = $1 AND balance_cents >= $2", client, RATE_CENTS)

    async def charge(pool: asyncpg.Pool, reading: int, minute: int) -> None:
        session, client, reader = readings[reading]
        await ledger.charge(pool, client_id=client, reader_id=reader, cents=RATE_CENTS, kind="reading_minute",
                            key=f"{run}:plain:{session}:{minute}", ref=session)

    async def charge_minute(pool: asyncpg.Pool, reading: int, minute: int) -> None:
        session, client, reader = readings[reading]
        # Each variant uses its own range of minute indexes so that every key is new.
        await recovery.charge_minute(pool, session_id=session, epoch=0, client_id=client, reader_id=reader,
                                     index=10_000_000 + minute, cents=RATE_CENTS)

    async def charge_batched(pool: asyncpg.Pool, reading: int, minute: int) -> None:
        session, client, reader = readings[reading]
        await batcher.charge(client_id=client, reader_id=reader, cents=RATE_CENTS, kind="reading_minute",
                             key=f"{run}:batched:{session}:{minute}", ref=session)

    async def charge_minute_batched(pool: asyncpg.Pool, reading: int, minute: int) -> None:
        session, client, reader = readings[reading]
        await batcher.charge_minute(session_id=session, epoch=0, client_id=client, reader_id=reader,
                                    index=20_000_000 + minute, cents=RATE_CENTS)

    return {"naive UPDATE (baseline)": naive, "ledger.charge": charge, "recovery.charge_minute": charge_minute,
            "ledger.charge batched": charge_batched, "charge_minute batched": charge_minute_batched}


async def _measure(pool: asyncpg.Pool, sessions: int, seconds: float, work: Charge) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def reading(index: int) -> None:
        minute = 0
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await work(pool, index, minute)
            latencies.append(time.perf_counter() - started)
            minute += 1

    began = time.perf_counter()
    await asyncio.gather(*(reading(i) for i in range(sessions)))
    return len(latencies), time.perf_counter() - began, latencies


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time used by the database backends ``pids`` (0 when they are not on this machine) and this process."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return total + usage.ru_utime + usage.ru_stime


async def _backend_pids(pool: asyncpg.Pool, size: int) -> list[int]:
    conns = [await pool.acquire() for _ in range(size)]
    try:
        return [int(await c.fetchval("SELECT pg_backend_pid()")) for c in conns]
    finally:
        for conn in conns:
            await pool.release(conn)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def main(args: argparse.Namespace) -> int:
    load = os.getloadavg()[0]
    name = f"soulseer_bench_{os.getpid()}"
    url = await create_database(args.database_url, name, migrated=False)  # _setup migrates it
    try:
        readings = await _setup(url, args.sessions)
        pool = await asyncpg.create_pool(url, min_size=args.pool_size, max_size=args.pool_size)
        pids = await _backend_pids(pool, args.pool_size)
        batcher = ChargeBatcher(pool, workers=args.batch_workers)
        try:
            rows = []
            for label, work in _variants(readings, uuid.uuid4().hex[:8], batcher).items():
                await _measure(pool, args.sessions, min(1.0, args.seconds), work)  # warm-up
                cpu = _cpu_seconds(pids)
                count, elapsed, latencies = await _measure(pool, args.sessions, args.seconds, work)
                cpu = _cpu_seconds(pids) - cpu
                rows.append((label, count, count / elapsed, statistics.median(latencies) * 1000,
                             _percentile(latencies, 99) * 1000, cpu / count * 1e6))
            ok = await pool.fetchval("SELECT count(*) = 0 FROM (SELECT txn_id FROM ledger_entries GROUP BY txn_id"
                                     " HAVING sum(amount_cents) <> 0) unbalanced")
            sync = await pool.fetchval("SHOW synchronous_commit")
        finally:
            await batcher.close()
            await pool.close()
    finally:
        if not args.keep:
            await drop_database(args.database_url, name)

    base = rows[0][2]
    cores = os.cpu_count() or 1
    print(f"ledger bench: {args.sessions} concurrent readings, pool of {args.pool_size} connections "
          f"({args.batch_workers} batch workers), {args.seconds:g} s each, synchronous_commit={sync}, "
          f"{cores} CPUs, load average before {load:.1f}")
    print(f"| {'variant':<26} | {'charges':>8} | {'charges/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} "
          f"| {'vs baseline':>11} | {'CPU us/charge':>13} | {f'CPU-bound /s on {cores} cores':>25} |")
    print(f"|{'-' * 28}|{'-' * 10}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 13}|{'-' * 15}|{'-' * 27}|")
    for label, count, rate, p50, p99, cpu_us in rows:
        print(f"| {label:<26} | {count:>8} | {rate:>9.0f} | {p50:>7.2f} | {p99:>7.2f} | {rate / base:>10.2f}x "
              f"| {cpu_us:>13.0f} | {cores * 1e6 / cpu_us:>25.0f} |")
    print(f"every ledger transaction balanced: {ok}")
    return 0 if ok else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test",
                        help="a server where the bench may create and drop a scratch database "
                             "(default: TEST_DATABASE_URL or the local test server)")
    parser.add_argument("--sessions", type=int, default=200, help="concurrent readings (default 200)")
    parser.add_argument("--pool-size", type=int, default=24, help="database connections (default 24)")
    parser.add_argument("--batch-workers", type=int, default=8,
                        help="batches in flight at once for the batched variants (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement time per variant (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database for inspection")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
