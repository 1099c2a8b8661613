"""Readers' Stripe connected accounts (Accounts v2, recipient configuration), as far as payouts need them.

A reader's account is created once (its id stored before the onboarding link is handed out, so a retry reuses
it); whether it may receive Transfers is the recipient configuration's ``stripe_balance.stripe_transfers``
capability status, refreshed from Stripe when the reader comes back from onboarding and when Stripe says it
changed (an Accounts v2 event).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from billing import ledger
from billing.ledger import Db

log = logging.getLogger(__name__)

TRANSFER_STATUSES = frozenset({"active", "pending", "restricted", "rejected", "unsupported"})


@dataclass(frozen=True)
class ConnectAccount:
    reader_id: str
    stripe_account_id: str
    transfers_status: str
    payouts_failing: bool

    @property
    def ready(self) -> bool:
        return self.transfers_status == "active"

    def as_json(self) -> dict[str, Any]:
        return {"accountId": self.stripe_account_id, "transfersStatus": self.transfers_status,
                "ready": self.ready, "payoutsFailing": self.payouts_failing}


_COLUMNS = "reader_id::text, stripe_account_id, transfers_status, payouts_failing"


async def get(db: Db, reader_id: str) -> ConnectAccount | None:
    async with ledger.connection(db) as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM connect_accounts WHERE reader_id = $1",  # noqa: S608
                                  reader_id)
    return None if row is None else ConnectAccount(**dict(row))


async def record(db: Db, *, reader_id: str, stripe_account_id: str) -> ConnectAccount:
    """Remember the reader's new account; the first one recorded stays (two clicks create one account)."""
    async with ledger.connection(db) as conn:
        await conn.execute("INSERT INTO connect_accounts (reader_id, stripe_account_id) VALUES ($1, $2)"
                           " ON CONFLICT (reader_id) DO NOTHING", reader_id, stripe_account_id)
    account = await get(db, reader_id)
    assert account is not None
    return account


async def set_status(db: Db, stripe_account_id: str, *, transfers_status: str) -> bool:
    """Record Stripe's word on whether the account can receive Transfers; False for an account we lack."""
    status = transfers_status if transfers_status in TRANSFER_STATUSES else "pending"
    async with ledger.connection(db) as conn:
        done = await conn.execute(
            "UPDATE connect_accounts SET transfers_status = $2, updated_at = now() WHERE stripe_account_id = $1",
            stripe_account_id, status)
    log.info("connect account status", extra={"accountId": stripe_account_id, "transfersStatus": status})
    return done.endswith(" 1")


async def payouts_failing(db: Db, stripe_account_id: str, failing: bool) -> bool:
    """The reader's bank payouts from their Stripe balance fail (``payout.failed``) or work again
    (``payout.paid``): shown to the reader and operators. The money is in the reader's Stripe balance either
    way, so the ledger does not move."""
    async with ledger.connection(db) as conn:
        done = await conn.execute(
            "UPDATE connect_accounts SET payouts_failing = $2, updated_at = now() WHERE stripe_account_id = $1",
            stripe_account_id, failing)
    return done.endswith(" 1")
