"""Money out in the billing metrics: counted from what the ledger wrote, like every other movement."""

from __future__ import annotations

import asyncpg
from prometheus_client import CollectorRegistry

from billing import ledger
from billing.metrics import BillingMetrics
from tests.billing.people import make_pair


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_payout_steps_dispute_fees_and_carried_losses_are_counted_once(pool: asyncpg.Pool) -> None:
    registry = CollectorRegistry()
    metrics = BillingMetrics(registry)
    client, reader = await make_pair(pool)
    await ledger.deposit(pool, client_id=client, cents=1_000, key="dep", ref="pi_1")
    await ledger.charge(pool, client_id=client, reader_id=reader, cents=1_000, key="g", kind="gift")
    payout = await ledger.move_reader_money(pool, reader_id=reader, cents=700, key="payout:p", kind="payout")
    paid = await ledger.move_reader_money(pool, reader_id=reader, cents=700, key="payout:p:paid", kind="payout_paid",
                                          original_key="payout:p")
    dispute = await ledger.withdraw_deposit(pool, client_id=client, cents=1_000, key="stripe:dispute:dp",
                                            kind="dispute", ref="dp", original_key="dep")
    fee = await ledger.dispute_fee(pool, client_id=client, cents=1_500, key="stripe:dispute:dp:fee", ref="dp")
    metrics.recorded(payout, paid, dispute, fee)
    metrics.recorded(await ledger.dispute_fee(pool, client_id=client, cents=1_500, key="stripe:dispute:dp:fee",
                                              ref="dp"))  # a replay counts nothing
    assert _value(registry, "soulseer_billing_payouts_cents_total", kind="payout") == 700
    assert _value(registry, "soulseer_billing_payouts_total", kind="payout_paid") == 1
    assert _value(registry, "soulseer_billing_dispute_fees_cents_total") == 1_500
    assert _value(registry, "soulseer_billing_loss_cents_total") == 1_000  # the wallet had nothing left
