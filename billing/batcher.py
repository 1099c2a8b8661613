"""Group commit for charges: many concurrent charges share one round trip and one commit.

Each charge is still its own single-statement movement with its own idempotency key (a wallet that
cannot pay skips only that charge), but the charges waiting at the same moment go to PostgreSQL together:
pipelined in one transaction (asyncpg ``fetchmany``), committed with one WAL flush. On a small machine a
ledger is bound by round trips and commits, not by the work of a charge, so this multiplies throughput
for the price of a little latency (a charge waits for the batch in flight).

Correctness does not rest on the batching: statements in a batch run in order in one transaction (two
charges of one wallet see each other; a repeated key is seen taken), wallets are locked in a fixed order
(client id) so two batches never deadlock, and anything a batch could not settle on its own (a replay, a
refusal, an error) is redone by the plain :func:`billing.ledger.charge_using`, which gives the exact
answer: the original ``Txn``, :class:`InsufficientFunds`, ...
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from billing import ledger, recovery
from billing.ledger import Txn
from billing.split import split

log = logging.getLogger(__name__)

# A charge statement that always answers one row (the new txn, or NULLs when nothing was charged), so
# the answers of a pipelined batch line up with its charges.
_ONE_ROW = "\nSELECT t.* FROM (SELECT 1) AS one LEFT JOIN txn AS t ON true"
_CHARGE = ledger.CHARGE_CTES + _ONE_ROW
_CHARGE_MINUTE = recovery.CHARGE_MINUTE_CTES + _ONE_ROW


@dataclass
class _Pending:
    statement: str
    plain: str  # the same movement as a plain one-row statement, for the exact answer when needed
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    done: asyncio.Future[Txn] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ChargeBatcher:
    """Charges through shared transactions. ``workers`` batches run at once, each of up to ``max_batch``."""

    def __init__(self, pool: asyncpg.Pool, *, workers: int = 4, max_batch: int = 64) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._workers = [asyncio.create_task(self._work(), name=f"ChargeBatcher-{n}") for n in range(workers)]

    async def charge(self, *, client_id: str, reader_id: str, cents: int, key: str, kind: str,
                     ref: str | None = None, memo: str = "") -> Txn:
        """:func:`billing.ledger.charge`, batched."""
        return await self._submit(_CHARGE, ledger.CHARGE_STATEMENT, (), client_id=client_id, reader_id=reader_id,
                                  cents=cents, key=key, kind=kind, ref=ref, memo=memo)

    async def charge_minute(self, *, session_id: str, epoch: int, client_id: str, reader_id: str, index: int,
                            cents: int) -> Txn:
        """:func:`billing.recovery.charge_minute` (charge + the reading's row, fenced by ``epoch``), batched.
        A charge the lease guard refused comes back as :class:`InsufficientFunds` (the plain path's answer
        before its lease check): callers that need to tell the two apart use the plain function."""
        return await self._submit(_CHARGE_MINUTE, recovery.CHARGE_MINUTE_STATEMENT,
                                  recovery.minute_args(index, epoch), client_id=client_id, reader_id=reader_id,
                                  cents=cents, key=recovery.minute_key(session_id, index), kind="reading_minute",
                                  ref=session_id, memo=f"minute {index + 1}")

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait().done.cancel()

    async def _submit(self, statement: str, plain: str, extra: Sequence[Any], **kw: Any) -> Txn:
        if kw["cents"] <= 0:  # free minutes and bad amounts: the plain path has the rules
            return await ledger.charge_using(self._pool, plain, extra_args=extra, **kw)
        reader_cents, platform_cents = split(kw["cents"])
        args = (kw["client_id"], kw["reader_id"], kw["cents"], kw["key"], kw["kind"], reader_cents,
                platform_cents, kw["ref"], kw["memo"], *extra)
        pending = _Pending(statement, plain, args, {**kw, "extra_args": tuple(extra)})
        await self._queue.put(pending)
        return await pending.done

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._run(batch)
            except Exception:  # never lose a worker: every charge of the batch gets its exact answer
                log.exception("charge batch failed", extra={"size": len(batch)})
                await asyncio.gather(*(self._one(p) for p in batch if not p.done.done()))

    async def _run(self, batch: list[_Pending]) -> None:
        batch.sort(key=lambda p: p.args[0])  # lock wallets in one order: concurrent batches never deadlock
        by_statement: dict[str, list[_Pending]] = {}
        for pending in batch:
            by_statement.setdefault(pending.statement, []).append(pending)
        answers: list[tuple[_Pending, asyncpg.Record]] = []
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                for statement, group in by_statement.items():
                    rows = await conn.fetchmany(statement, [p.args for p in group])
                    answers.extend(zip(group, rows, strict=True))
        except (asyncpg.PostgresError, ledger.BillingError) as exc:
            # One bad charge (a key race, an unknown user) fails the shared transaction: nothing of it was
            # committed, so each charge is simply done on its own.
            log.info("charge batch redone one by one", extra={"size": len(batch), "error": type(exc).__name__})
            await asyncio.gather(*(self._one(p) for p in batch))
            return
        redo = []
        for pending, row in answers:
            if row["id"] is not None:
                if not pending.done.done():  # its caller may have given up waiting
                    pending.done.set_result(ledger.txn_from_row(row))
            else:
                redo.append(pending)
        await asyncio.gather(*(self._one(p) for p in redo))

    async def _one(self, pending: _Pending) -> None:
        try:
            txn = await ledger.charge_using(self._pool, pending.plain, **pending.kwargs)
        except Exception as exc:  # handed to the caller as is: InsufficientFunds, ...
            if not pending.done.done():
                pending.done.set_exception(exc)
            return
        if not pending.done.done():
            pending.done.set_result(txn)
