"""The money-out worker on every node: finishes payouts and withdrawals whose Stripe answer never came (a crash,
a timeout), and runs the payout schedule. Safe on many nodes at once: starting a payout locks the reader's
account row and one payout per reader can be in transit, and every Stripe call repeats the same idempotency key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS, STRIPE
from api.core.periodic import Periodic
from billing import payouts, withdrawals
from billing.errors import BillingError

TICK_SECONDS = 30.0
# A Stripe call still unanswered after this long is asked again (its own request has long timed out).
RETRY_AFTER = timedelta(seconds=60)
WORKER = web.AppKey("money_out_worker", Periodic)


async def run_once(app: web.Application, now: datetime) -> None:
    """One pass: finish what is pending, then pay the readers the schedule says are due."""
    pool = app[DATABASE].pool
    gateway = app[STRIPE]
    metrics = app[BILLING_METRICS]
    settings = app[SETTINGS]
    if not gateway.checkout_enabled:
        return
    for payout in await payouts.in_transit(pool, older_than=now - RETRY_AFTER):
        metrics.recorded((await payouts.send(pool, gateway, payout))[1])
    for withdrawal in await withdrawals.pending(pool, older_than=now - RETRY_AFTER):
        metrics.recorded(*(await withdrawals.send(pool, gateway, withdrawal))[1])
    if settings.payout_interval_days <= 0:
        return
    interval = timedelta(days=settings.payout_interval_days)
    for reader_id in await payouts.due_readers(pool, interval=interval, now=now):
        try:
            payout, txn = await payouts.start(pool, reader_id, trigger="scheduled",
                                              hold=timedelta(days=settings.payout_hold_days), minimum_cents=0,
                                              now=now)
        except BillingError:
            continue  # nothing payable yet, or another node started it
        metrics.recorded(txn)
        metrics.recorded((await payouts.send(pool, gateway, payout))[1])


def setup(app: web.Application) -> None:
    # A database or Stripe outage fails a pass: it is logged and the next tick tries again.
    app[WORKER] = worker = Periodic("money-out-worker", lambda: run_once(app, datetime.now(UTC)),
                                    interval=TICK_SECONDS, at_start=True)
    app.cleanup_ctx.append(worker.lifetime)
