"""BillingMetrics.recorded: one rule that turns what the ledger wrote into the money series."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from billing.ledger import Txn
from billing.metrics import BillingMetrics

MIGRATION = Path(__file__).resolve().parents[2] / "api" / "core" / "migrations" / "0002_ledger.sql"


def _txn(kind: str, cents: int, *, platform: int = 0, replayed: bool = False, source: str | None = None) -> Txn:
    return Txn(id="t", key=f"{kind}:{cents}", kind=kind, amount_cents=cents, reader_cents=cents - platform,
               platform_cents=platform, replayed=replayed, source=source)


def test_each_kind_is_counted_from_the_ledgers_amounts_and_replays_are_not() -> None:
    registry = CollectorRegistry()
    metrics = BillingMetrics(registry)
    metrics.recorded(_txn("gift", 500, platform=150), _txn("gift", 500, platform=150, replayed=True),
                     _txn("message", 300, platform=90), _txn("scheduled_reading", 2500, platform=750),
                     _txn("reading_minute", 120, platform=36), _txn("refund", 100, platform=30),
                     _txn("dispute", 900), _txn("dispute", 900, replayed=True), _txn("deposit", 2000, source="stripe"),
                     None)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("soulseer_billing_charged_cents_total", kind="gift") == 500
    assert value("soulseer_billing_charged_cents_total", kind="message") == 300
    assert value("soulseer_billing_charged_cents_total", kind="scheduled_reading") == 2500
    assert value("soulseer_billing_revenue_cents_total") == 150 + 90 + 750 + 36
    assert value("soulseer_billing_minutes_charged_total") == 1
    assert value("soulseer_billing_revenue_refunded_cents_total") == 30
    assert value("soulseer_billing_refunded_cents_total", kind="dispute") == 900
    assert value("soulseer_billing_refunds_total", kind="dispute") == 1
    assert value("soulseer_billing_deposits_cents_total", source="stripe") == 2000


def test_every_kind_the_ledger_can_write_has_a_series() -> None:
    kinds = re.search(r"kind IN \(([^)]*)\)", MIGRATION.read_text()).group(1)  # type: ignore[union-attr]
    registry = CollectorRegistry()
    metrics = BillingMetrics(registry)
    for kind in re.findall(r"'([a-z_]+)'", kinds):
        metrics.recorded(_txn(kind, 7, source="manual"))
    counted = sum(registry.get_sample_value(name, labels) or 0 for name, labels in [
        ("soulseer_billing_charged_cents_total", {"kind": k}) for k in ("reading_minute", "scheduled_reading",
                                                                         "gift", "message")] + [
        ("soulseer_billing_refunded_cents_total", {"kind": k}) for k in ("refund", "stripe_refund", "dispute",
                                                                          "dispute_reinstated")] + [
        ("soulseer_billing_deposits_cents_total", {"source": "manual"})])
    assert counted == 7 * 9
