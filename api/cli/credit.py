"""``soulseer credit EMAIL CENTS --reason TEXT``: an operator credits a client's wallet through the ledger.

The credit is a manual deposit (counter-account ``adjustments``) with the reason and the operator stored
on its transaction, so every manual movement is audited in the ledger itself.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import uuid
from typing import Any

from api.cli.database import with_database
from api.core.database import Database
from billing import ledger
from billing.errors import BillingError
from config import Settings


def _operator() -> str:
    """Who runs the command: the sudo user behind root when there is one."""
    for variable in ("SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _credit(settings: Settings, args: argparse.Namespace) -> int:
    if args.cents <= 0:
        print("error: CENTS must be a positive integer", file=sys.stderr)
        return 2
    reason = args.reason.strip()
    if not reason:
        print("error: --reason must say why", file=sys.stderr)
        return 2
    key = args.key or f"manual:{uuid.uuid4()}"

    async def work(database: Database) -> int:
        user: Any = await database.pool.fetchrow(
            "SELECT id::text, email, role FROM users WHERE lower(email) = lower($1)", args.email)
        if user is None or user["role"] != "client":
            print(f"error: no client account with email {args.email}", file=sys.stderr)
            return 1
        try:
            txn = await ledger.deposit(database.pool, client_id=user["id"], cents=args.cents, key=key,
                                       source="manual", memo=reason[:500], operator=args.operator[:200])
        except BillingError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        now = await ledger.balance(database.pool, user["id"])
        done = "already credited (same --key)" if txn.replayed else "credited"
        print(f"{done}: {args.cents} cents to {user['email']} (transaction {txn.id}); balance now {now} cents")
        return 0

    return asyncio.run(with_database(settings, work))


def register(sub: Any) -> None:
    """Add ``credit`` to the ``soulseer`` command."""
    credit = sub.add_parser("credit", help="credit a client's wallet (a manual, audited ledger deposit)")
    credit.add_argument("email", help="the client's account email")
    credit.add_argument("cents", type=int, help="amount in integer cents, e.g. 500 for $5.00")
    credit.add_argument("--reason", required=True, help="why (stored with the transaction)")
    credit.add_argument("--operator", default=_operator(), help="who is crediting (default: your user name)")
    credit.add_argument("--key", help="idempotency key: running again with the same key credits once")
    credit.set_defaults(run=_credit)
