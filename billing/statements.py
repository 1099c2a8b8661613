"""A reader's earnings statement: one line per reading (or gift, or paid message), and its CSV; and one
reading's money as both its parties see it (:func:`reading_totals`, what every page and the API show).

Every line is read from the ledger: a reading's minutes (or its booking) and their refunds share the reading's
id as ``ref``, so grouping the reader's earnings entries by ``ref`` gives, per reading, what the client paid,
what was refunded and what the reader earned net (70 % of the difference, as the ledger split it).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing import ledger
from billing.ledger import Db

# An intro offer's free minute is part of its reading's line (paid by the platform, at the reader's share).
_KIND_OF_LINE = {"reading_minute": "reading", "intro_minute": "reading", "scheduled_reading": "reading", "gift": "gift",
                 "message": "message"}


@dataclass(frozen=True)
class StatementLine:
    at: datetime
    kind: str  # reading | gift | message
    ref: str
    gross_cents: int
    refunded_cents: int
    earned_cents: int

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat().replace("+00:00", "Z"), "kind": self.kind, "ref": self.ref,
                "grossCents": self.gross_cents, "refundedCents": self.refunded_cents, "earnedCents": self.earned_cents}


async def lines(db: Db, reader_id: str, *, since: datetime, until: datetime) -> list[StatementLine]:
    """The reader's earning lines whose first charge falls in ``[since, until)``, newest first."""
    async with ledger.connection(db) as conn:
        rows = await conn.fetch(
            "SELECT t.ref, min(t.created_at) FILTER (WHERE t.kind <> 'refund') AS at,"
            " min(t.kind) FILTER (WHERE t.kind <> 'refund') AS kind,"
            " coalesce(sum(t.amount_cents) FILTER (WHERE t.kind <> 'refund'), 0)::bigint AS gross,"
            " coalesce(sum(t.amount_cents) FILTER (WHERE t.kind = 'refund'), 0)::bigint AS refunded,"
            " sum(e.amount_cents)::bigint AS earned"
            " FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.txn_id"
            " WHERE e.owner_id = $1 AND e.account = 'earnings' AND t.kind IN"
            " ('reading_minute', 'intro_minute', 'scheduled_reading', 'gift', 'message', 'refund')"
            " AND t.ref IS NOT NULL"
            " GROUP BY t.ref HAVING min(t.created_at) FILTER (WHERE t.kind <> 'refund') >= $2"
            " AND min(t.created_at) FILTER (WHERE t.kind <> 'refund') < $3"
            " ORDER BY at DESC LIMIT 5000", reader_id, since, until)
    return [StatementLine(at=r["at"], kind=_KIND_OF_LINE.get(r["kind"], r["kind"]), ref=r["ref"],
                          gross_cents=r["gross"], refunded_cents=r["refunded"], earned_cents=r["earned"])
            for r in rows]


async def totals(db: Db, reader_id: str) -> dict[str, int]:
    """The reader's accounts now: earnings (not yet paid out), in transit, paid out (in cents)."""
    async with ledger.connection(db) as conn:
        rows = await conn.fetch("SELECT account, balance_cents FROM ledger_accounts WHERE owner_id = $1"
                                " AND account IN ('earnings', 'payouts_in_transit', 'paid_out')", reader_id)
    have = {r["account"]: int(r["balance_cents"]) for r in rows}
    return {"earningsCents": have.get("earnings", 0), "inTransitCents": have.get("payouts_in_transit", 0),
            "paidOutCents": have.get("paid_out", 0)}


# The movements of a reading's money: its minutes (an intro offer's free ones are paid to the reader by the
# platform, nothing from the wallet), its booking, and their refunds.
READING_MONEY = ("reading_minute", "intro_minute", "scheduled_reading", "refund")


@dataclass(frozen=True)
class ReadingTotals:
    """One reading's money, net of its refunds: what the client paid and what the reader earned."""

    charged_cents: int
    earned_cents: int


async def reading_totals(db: Db, session_id: str) -> ReadingTotals:
    """What the ledger holds for one reading: its minutes (or its booking) less their refunds, from the client's
    wallet entries and the reader's earnings entries. The one source of a reading's money on a page or in the API
    (the meter's running view, before the refund of the last minute, is not it)."""
    return (await readings_totals(db, [session_id])).get(session_id, ReadingTotals(0, 0))


async def readings_totals(db: Db, session_ids: list[str]) -> dict[str, ReadingTotals]:
    """:func:`reading_totals` for many readings in one query (a history page); readings with no money are left out."""
    async with ledger.connection(db) as conn:
        rows = await conn.fetch(
            "SELECT t.ref, coalesce(-sum(e.amount_cents) FILTER (WHERE e.account = 'wallet'), 0)::bigint AS charged,"
            " coalesce(sum(e.amount_cents) FILTER (WHERE e.account = 'earnings'), 0)::bigint AS earned"
            " FROM ledger_transactions t JOIN ledger_entries e ON e.txn_id = t.id"
            " WHERE t.ref = ANY($1::text[]) AND t.kind = ANY($2::text[])"
            " GROUP BY t.ref", [str(i) for i in session_ids], list(READING_MONEY))
    return {r["ref"]: ReadingTotals(charged_cents=int(r["charged"]), earned_cents=int(r["earned"])) for r in rows}


def to_csv(statement: list[StatementLine]) -> str:
    """The statement as CSV (dollars as cents, so a spreadsheet never rounds money)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "kind", "reference", "gross_cents", "refunded_cents", "earned_cents"])
    for line in statement:
        writer.writerow([line.at.isoformat().replace("+00:00", "Z"), line.kind, line.ref, line.gross_cents,
                         line.refunded_cents, line.earned_cents])
    return out.getvalue()
