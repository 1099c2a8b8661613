-- Card refunds as Stripe reports them: charge.refunded carries the cumulative amount_refunded of a payment.
-- Kept per deposit because a refund that a dispute's hold already covered takes nothing at the time, and
-- must be taken back after all if that dispute is won (the hold is reinstated).
CREATE TABLE stripe_refund_totals (
    deposit_id     uuid PRIMARY KEY REFERENCES ledger_transactions (id),
    refunded_cents bigint NOT NULL CHECK (refunded_cents >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
