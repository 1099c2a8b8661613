"""Prometheus series for money: minutes charged, revenue, refunds, deposits, webhook outcomes, meter decisions.

Created on the app's registry by ``create_app`` (never at import), and handed to whoever moves money.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter


def _kind(decision: object) -> str:
    """``ChargeMinute`` -> ``charge_minute``: the metric label of a meter decision."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(decision).__name__).lower()


class BillingMetrics:
    """Counters for the billing package; every method is cheap and safe to call on a hot path."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.minutes_charged = Counter(
            "soulseer_billing_minutes_charged", "Reading minutes charged", registry=registry)
        self.charged_cents = Counter(
            "soulseer_billing_charged_cents", "Cents charged to wallets, by kind of charge", ["kind"],
            registry=registry)
        self.revenue_cents = Counter(
            "soulseer_billing_revenue_cents", "Platform share of charges, in cents", registry=registry)
        self.refunds = Counter(
            "soulseer_billing_refunds", "Refunds and withdrawals, by kind", ["kind"], registry=registry)
        self.refunded_cents = Counter(
            "soulseer_billing_refunded_cents", "Cents given back or taken back, by kind", ["kind"],
            registry=registry)
        self.deposits_cents = Counter(
            "soulseer_billing_deposits_cents", "Cents added to wallets, by source", ["source"], registry=registry)
        self.insufficient_funds = Counter(
            "soulseer_billing_insufficient_funds", "Charges refused for lack of funds", registry=registry)
        self.webhook_events = Counter(
            "soulseer_billing_webhook_events", "Stripe webhook events, by type and result", ["type", "result"],
            registry=registry)
        self.meter_decisions = Counter(
            "soulseer_billing_meter_decisions", "Meter decisions, by kind", ["kind"], registry=registry)

    def charged(self, kind: str, cents: int, platform_cents: int) -> None:
        self.charged_cents.labels(kind).inc(cents)
        self.revenue_cents.inc(platform_cents)
        if kind == "reading_minute":
            self.minutes_charged.inc()

    def refunded(self, kind: str, cents: int) -> None:
        self.refunds.labels(kind).inc()
        self.refunded_cents.labels(kind).inc(cents)

    def deposited(self, source: str, cents: int) -> None:
        self.deposits_cents.labels(source).inc(cents)

    def refused(self) -> None:
        self.insufficient_funds.inc()

    def webhook(self, event_type: str, result: str) -> None:
        self.webhook_events.labels(event_type, result).inc()

    def meter(self, decisions: Iterable[object]) -> None:
        """Count a meter's decisions (``charge_minute``, ``warn``, ``pause``, ``resume``, ``refund``, ``end``)."""
        for decision in decisions:
            self.meter_decisions.labels(_kind(decision)).inc()
