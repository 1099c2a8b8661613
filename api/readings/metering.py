"""A per-minute reading's money while it runs: billing's pure meter fed, and its decisions carried out.

The runtime (:mod:`api.readings.runtime`) owns one :class:`Metering` per per-minute reading and tells it what
happens (the start, who is connected, the end, every tick). It carries out the meter's decisions through
:mod:`billing.recovery` under the runtime's lease epoch: a charge at the start of each billable minute, the
refund of the unused part of the last one at the end; it persists the meter's state every tick (what the
next owner restores from) and polls the client's balance, so funds added anywhere reach the meter within a
second. A charge a database error interrupted is carried out again (idempotently) before anything else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from billing import intro_offer, ledger, recovery
from billing.errors import InsufficientFunds
from billing.meter import ChargeMinute, End, Meter, Pause, Refund, Resume, Warn
from billing.metrics import BillingMetrics
from billing.split import split

log = logging.getLogger(__name__)

WARN_SECONDS = 60
DB_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError)


class Metering:
    """The meter of one per-minute reading and the money it moves.

    :param on_change: the billable state changed (a minute charged, a pause): push it to the tabs.
    :param on_warn: the client's money runs out in this many seconds.
    :param on_end: the meter ended the reading for this reason: settle it (see :meth:`settle`).
    :param is_over: whether the reading has ended meanwhile (nothing more is carried out then).
    """

    def __init__(self, pool: asyncpg.Pool, *, session_id: str, client_id: str, reader_id: str, rate_cents: int,
                 grace_seconds: float, epoch: int, metrics: BillingMetrics | None, log_extra: dict[str, Any],
                 on_change: Callable[[], None], on_warn: Callable[[float], None],
                 on_end: Callable[[str, float], Awaitable[None]], is_over: Callable[[], bool],
                 free_minutes: int = 0) -> None:
        self._pool = pool
        self._session_id, self._client_id, self._reader_id = session_id, client_id, reader_id
        self._rate = rate_cents
        self._free = free_minutes  # the intro offer's free minutes (billing/intro_offer.py)
        self._grace = grace_seconds
        self._epoch = epoch
        self._metrics = metrics
        self._log = log_extra
        self._on_change, self._on_warn, self._on_end, self._is_over = on_change, on_warn, on_end, is_over
        self.meter: Meter | None = None
        self.balance: int | None = None  # the client's balance as last read, less what was charged since
        self.earned = 0  # the reader's share of what this runtime charged
        self._refund: Refund | None = None
        # Decisions a database error interrupted, carried out again (idempotently) on the next tick.
        self._retry: list[Any] = []

    async def read_balance(self) -> int:
        self.balance = await ledger.balance(self._pool, self._client_id)
        return self.balance

    async def begin(self, now: float) -> None:
        """The reading started: a fresh meter on the client's balance, both participants connected."""
        await self.read_balance()
        self.meter = Meter(rate_cents=self._rate, balance_cents=self.balance or 0, grace_seconds=self._grace,
                           warn_seconds=WARN_SECONDS, free_minutes=self._free)
        log.info("reading started", extra={**self._log, "balanceCents": self.balance})

    async def connected_both(self, now: float) -> None:
        assert self.meter is not None
        await self.execute(self.meter.connected("client", now) + self.meter.connected("reader", now), now)

    async def restore(self, row: asyncpg.Record | dict[str, Any], now: float) -> None:
        """A reading adopted mid-way: the meter continues from the minutes charged and the billable seconds
        last persisted; nobody is connected, so the grace period runs from ``now``."""
        await self.read_balance()
        self.meter = Meter(rate_cents=self._rate, balance_cents=self.balance or 0, grace_seconds=self._grace,
                           warn_seconds=WARN_SECONDS, billable_seconds=float(row["meter_billable_seconds"]),
                           minutes_charged=int(row["meter_minutes_charged"]), restored=True,
                           free_minutes=self._free)
        await self.execute(self.meter.tick(now), now)
        log.info("reading resumed", extra={**self._log, "billableSeconds": row["meter_billable_seconds"],
                                           "minutesCharged": row["meter_minutes_charged"]})

    async def presence(self, role: str, connected: bool, now: float) -> None:
        assert self.meter is not None
        await self.execute(self.meter.connected(role, now) if connected else self.meter.disconnected(role, now), now)

    async def finish(self, now: float, reason: str) -> None:
        """Someone ends the reading: the meter's last decisions (the refund, the end)."""
        assert self.meter is not None
        await self.execute(self.meter.finish(now, reason), now)

    async def tick(self, now: float) -> str | None:
        """One second passed. Returns the reason to settle with when the meter ended but its settlement has
        not committed yet (a database error): the runtime settles again."""
        meter = self.meter
        assert meter is not None
        if self._retry:
            retry, self._retry = self._retry, []
            await self.execute(retry, now)
        if meter.ended and not self._is_over() and not self._retry:
            return meter.end_reason or "ended"
        await self.execute(meter.tick(now), now)
        if self._is_over() or self._retry:
            # While a charge is outstanding the meter's state is not persisted: the next owner must
            # restore from the ledger's minutes, never from seconds nobody paid for. The lease is renewed
            # by the node's keeper all the same.
            return None
        await self.persist(now)
        # Polling is how funds added anywhere (a webhook on another request or node) reach the meter.
        balance = await self.read_balance()
        if balance != meter.balance_cents:
            await self.execute(meter.funds_added(balance, now), now)
        if not self._is_over():
            self._on_change()
        return None

    @property
    def persistable(self) -> bool:
        """Whether the meter's state may be persisted now (no charge outstanding, not ended)."""
        return self.meter is not None and not self._retry and not self.meter.ended

    async def persist(self, now: float) -> None:
        """Record the meter's heartbeat (raises :class:`billing.errors.LeaseLost` if the epoch moved on)."""
        assert self.meter is not None
        await recovery.record_heartbeat(self._pool, self._session_id, self.meter.billable_seconds(now),
                                        self.meter.minutes_charged, epoch=self._epoch)

    async def settle(self, conn: asyncpg.Connection, now: float) -> None:
        """The money of the end, in the caller's transaction: refund the unused part, write the totals."""
        assert self.meter is not None
        refund = self._refund.cents if self._refund is not None else 0
        await recovery.settle_reading(conn, session_id=self._session_id, epoch=self._epoch,
                                      billable_seconds=self.meter.billable_seconds(now), refund_cents=refund,
                                      metrics=self._metrics)
        self.earned -= split(refund)[0]

    async def _charge(self, decision: ChargeMinute) -> ledger.Txn:
        """A minute's money: charged to the wallet, or (an intro offer's) given by the promotion account."""
        if decision.free:
            txn = await intro_offer.give_minute(self._pool, session_id=self._session_id, epoch=self._epoch,
                                                index=decision.index, rate_cents=decision.cents,
                                                key=recovery.minute_key(self._session_id, decision.index))
            if self._metrics is not None:
                self._metrics.recorded(txn)
            return txn
        return await recovery.charge_minute(
            self._pool, session_id=self._session_id, epoch=self._epoch, client_id=self._client_id,
            reader_id=self._reader_id, index=decision.index, cents=decision.cents, metrics=self._metrics)

    async def execute(self, decisions: list[Any], now: float) -> None:
        """Carry out the meter's decisions in order, feeding failures back to it."""
        if self._metrics is not None:
            self._metrics.meter(decisions)
        pending = list(decisions)
        while pending and not self._is_over():
            decision = pending.pop(0)
            if isinstance(decision, ChargeMinute):
                try:
                    charged = await self._charge(decision)
                except InsufficientFunds:
                    log.info("minute not covered", extra={**self._log, "minute": decision.index})
                    pending = self.meter.charge_failed(now) + pending if self.meter else pending
                    continue
                except DB_ERRORS as exc:
                    # The meter counts this minute as charged: the same (idempotent) charge must happen
                    # before anything else, or the settlement would refund a minute the ledger never had.
                    log.warning("minute charge failed, retrying next tick: %s", exc,
                                extra={**self._log, "minute": decision.index})
                    self._retry = [decision, *pending]
                    return
                if not charged.replayed:
                    self.earned += charged.reader_cents
                    if self.balance is not None and not decision.free:
                        self.balance -= charged.amount_cents
                log.info("minute charged", extra={**self._log, "minute": decision.index, "cents": decision.cents})
                self._on_change()
            elif isinstance(decision, Refund):
                self._refund = decision
            elif isinstance(decision, Warn):
                self._on_warn(decision.seconds_left)
            elif isinstance(decision, (Pause, Resume)):
                self._on_change()
            elif isinstance(decision, End):
                await self._on_end(decision.reason, now)
