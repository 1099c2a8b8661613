"""Prometheus series for money: what the ledger wrote (charges, revenue, refunds, deposits), webhook outcomes,
paid checkouts refused, meter decisions.

Created on the app's registry by ``create_app`` (never at import), and handed to whoever moves money. Money is
counted in one place, :meth:`BillingMetrics.recorded`, from the :class:`billing.ledger.Txn` the ledger returns:
a replayed movement (an idempotency key used before: a retry, a redelivered webhook) moved nothing and is not
counted again, and every kind of movement is counted the same way wherever it happens. Callers record a
movement once its database transaction has committed, where they can tell.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from billing.ledger import CHARGE_KINDS, PAYOUT_MOVES, Txn

log = logging.getLogger(__name__)

# Movements that give money back to a wallet or take it back out: counted as refunds, by kind.
REFUND_KINDS = frozenset({"refund", "stripe_refund", "dispute", "dispute_reinstated", "withdrawal_failed"})


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
        self.revenue_refunded_cents = Counter(
            "soulseer_billing_revenue_refunded_cents", "Platform share given back by refunds of charges, in cents",
            registry=registry)
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
        self.checkouts_refused = Counter(
            "soulseer_billing_checkouts_refused",
            "Paid checkouts not credited: not one we created, or not for what we created it (alert on any)",
            ["reason"], registry=registry)
        self.payouts_cents = Counter(
            "soulseer_billing_payouts_cents",
            "Cents of reader payouts, by step: payout (started), payout_paid, payout_failed, payout_reversed",
            ["kind"], registry=registry)
        self.payouts = Counter(
            "soulseer_billing_payouts", "Reader payouts, by step (alert on failed and reversed)", ["kind"],
            registry=registry)
        self.dispute_fees_cents = Counter(
            "soulseer_billing_dispute_fees_cents", "Fees of disputes lost, in cents (the platform's loss)",
            registry=registry)
        self.loss_cents = Counter(
            "soulseer_billing_loss_cents", "Cents the platform carried: withdrawals a spent wallet could not cover",
            registry=registry)
        self.promotion_cents = Counter(
            "soulseer_billing_promotion_cents", "Cents the promotion account paid readers for intro-offer free minutes",
            registry=registry)
        self.meter_decisions = Counter(
            "soulseer_billing_meter_decisions", "Meter decisions, by kind", ["kind"], registry=registry)

    def recorded(self, *txns: Txn | None) -> None:
        """Count movements as the ledger wrote them; replays (and ``None``: nothing written) count nothing."""
        for txn in txns:
            if txn is None or txn.replayed:
                continue
            if txn.kind in CHARGE_KINDS:
                self.charged_cents.labels(txn.kind).inc(txn.amount_cents)
                self.revenue_cents.inc(txn.platform_cents)
                if txn.kind == "reading_minute":
                    self.minutes_charged.inc()
            elif txn.kind in REFUND_KINDS:
                self.refunds.labels(txn.kind).inc()
                self.refunded_cents.labels(txn.kind).inc(txn.amount_cents)
                if txn.kind == "refund":
                    self.revenue_refunded_cents.inc(txn.platform_cents)
                if txn.kind in ("stripe_refund", "dispute") and txn.loss_cents:
                    self.loss_cents.inc(txn.loss_cents)
            elif txn.kind in PAYOUT_MOVES:
                self.payouts.labels(txn.kind).inc()
                self.payouts_cents.labels(txn.kind).inc(txn.amount_cents)
            elif txn.kind == "intro_minute":
                self.promotion_cents.inc(txn.amount_cents)
            elif txn.kind == "dispute_fee":
                self.dispute_fees_cents.inc(txn.amount_cents)
            elif txn.kind == "deposit":
                self.deposits_cents.labels(txn.source or "unknown").inc(txn.amount_cents)
            else:  # money already moved: never fail the caller for a metric
                log.error("no metric for this kind of ledger movement", extra={"kind": txn.kind, "key": txn.key})

    def refused(self) -> None:
        self.insufficient_funds.inc()

    def webhook(self, event_type: str, result: str) -> None:
        self.webhook_events.labels(event_type, result).inc()

    def checkout_refused(self, reason: str) -> None:
        self.checkouts_refused.labels(reason).inc()

    def meter(self, decisions: Iterable[object]) -> None:
        """Count a meter's decisions (``charge_minute``, ``warn``, ``pause``, ``resume``, ``refund``, ``end``)."""
        for decision in decisions:
            self.meter_decisions.labels(_kind(decision)).inc()
