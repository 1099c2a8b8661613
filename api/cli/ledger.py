"""``soulseer ledger verify``: the ledger's invariants checked on a live database (billing/verify.py, the same
code the tests run on every test database). Exit 0 when sound; 1 with every violation and its offending rows."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from api.cli.database import with_database
from api.core.database import Database
from billing.verify import verify
from config import Settings


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    async def work(database: Database) -> int:
        violations = await verify(database.pool)
        if args.json:
            print(json.dumps({"ok": not violations, "violations": [
                {"rule": v.rule, "message": v.message, "rows": v.rows} for v in violations]}, default=str))
        elif violations:
            for v in violations:
                print(f"VIOLATION [{v.rule}] {v.message}", file=sys.stderr)
                for row in v.rows:
                    print(f"    {json.dumps(row, default=str)}", file=sys.stderr)
        else:
            print("ledger verified: every invariant holds")
        return 1 if violations else 0

    return asyncio.run(with_database(settings, work))


def register(sub: argparse._SubParsersAction) -> None:
    ledger = sub.add_parser("ledger", help="check the ledger")
    commands = ledger.add_subparsers(dest="ledger_command", required=True)
    check = commands.add_parser("verify", help="check every money invariant of the database; exit 1 on any"
                                               " violation, printing the offending rows")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(run=_verify)
