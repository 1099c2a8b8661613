"""The ledger's invariants as a test assertion: a thin shell over :func:`billing.verify.verify`.

``tests/conftest.py`` runs :func:`assert_ledger_invariants` on every test's database that holds a ledger
row, before dropping it, so every test that moves money is checked, not only the ledger's own tests. It is the
same code ``soulseer ledger verify`` runs on a live database: one copy of the rules.
"""

from __future__ import annotations

import asyncpg

from billing.verify import verify


async def assert_ledger_invariants(db: asyncpg.Pool | asyncpg.Connection) -> None:
    """Fail with every violation :func:`billing.verify.verify` finds, each with its offending rows."""
    violations = await verify(db)
    assert violations == [], "\n".join(str(v) for v in violations)
