-- Money out and money disputed: reader payouts over Stripe Connect, wallet withdrawals back to the card,
-- the dispute lifecycle, and the operator console's audit trail.

-- New kinds of movement:
--   payout            earnings -> payouts_in_transit   (a Transfer to the reader's connected account is asked for)
--   payout_paid       payouts_in_transit -> paid_out   (Stripe created the Transfer)
--   payout_failed     payouts_in_transit -> earnings   (Stripe refused the Transfer: the money never left)
--   payout_reversed   paid_out -> earnings             (a Transfer reversal took money back from the reader)
--   withdrawal_failed undoes a wallet withdrawal's card refund that Stripe refused (the money never left)
--   dispute_fee       loss -> stripe                   (the fee of a dispute lost)
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check CHECK (kind IN (
    'deposit', 'reading_minute', 'scheduled_reading', 'gift', 'message',
    'refund', 'stripe_refund', 'dispute', 'dispute_reinstated',
    'payout', 'payout_paid', 'payout_failed', 'payout_reversed', 'withdrawal_failed', 'dispute_fee'));

-- New accounts, per reader: payouts_in_transit (asked of Stripe, not yet confirmed) and paid_out (transferred
-- to the reader's connected account: the money has left the platform's balance).
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_check;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_account_check CHECK (account IN (
    'wallet', 'earnings', 'revenue', 'stripe', 'adjustments', 'loss', 'payouts_in_transit', 'paid_out'));
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_owner_check CHECK (
    (account IN ('wallet', 'earnings', 'payouts_in_transit', 'paid_out')) = (owner_id IS NOT NULL));
CREATE INDEX ledger_entries_earnings_idx ON ledger_entries (owner_id, account) WHERE account = 'earnings';

-- A reader's Stripe connected account (Accounts v2, recipient configuration). `transfers_status` is the
-- recipient configuration's stripe_balance.stripe_transfers capability status as Stripe last reported it.
CREATE TABLE connect_accounts (
    reader_id         uuid PRIMARY KEY REFERENCES users (id),
    stripe_account_id text NOT NULL UNIQUE,
    transfers_status  text NOT NULL DEFAULT 'pending'
                      CHECK (transfers_status IN ('active', 'pending', 'restricted', 'rejected', 'unsupported')),
    payouts_failing   boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One payout: a Transfer of `cents` of a reader's payable earnings. The ledger movement `payout:{id}` and this
-- row commit together; the Transfer is asked for afterwards with the idempotency key `payout:{id}`, so a
-- crash in between is finished by asking again (Stripe answers the same Transfer).
CREATE TABLE payouts (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reader_id          uuid NOT NULL REFERENCES users (id),
    cents              bigint NOT NULL CHECK (cents > 0),
    trigger            text NOT NULL CHECK (trigger IN ('scheduled', 'on_demand')),
    status             text NOT NULL DEFAULT 'in_transit' CHECK (status IN ('in_transit', 'paid', 'failed')),
    stripe_account_id  text NOT NULL,
    stripe_transfer_id text UNIQUE,
    reversed_cents     bigint NOT NULL DEFAULT 0 CHECK (reversed_cents >= 0 AND reversed_cents <= cents),
    failure            text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payouts_reader_idx ON payouts (reader_id, created_at DESC);
CREATE INDEX payouts_in_transit_idx ON payouts (created_at) WHERE status = 'in_transit';
-- At most one payout of a reader in transit at a time: two nodes (or a schedule and a click) never both pay.
CREATE UNIQUE INDEX payouts_one_in_transit ON payouts (reader_id) WHERE status = 'in_transit';

-- A client's withdrawal of unused wallet funds, back to the cards they came from. `request_id` is the
-- client's: a retry of one request is the same withdrawal.
CREATE TABLE withdrawals (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id  uuid NOT NULL REFERENCES users (id),
    request_id text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 100),
    cents      bigint NOT NULL CHECK (cents > 0),
    status     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed', 'partial')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, request_id)
);
CREATE INDEX withdrawals_client_idx ON withdrawals (client_id, created_at DESC);

-- One card refund of a withdrawal: part of one deposit (the newest first). Its ledger movement is the
-- `stripe_refund` keyed `txn_key`; Stripe is asked with the idempotency key `withdrawal-part:{id}`.
CREATE TABLE withdrawal_parts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    withdrawal_id    uuid NOT NULL REFERENCES withdrawals (id),
    deposit_id       uuid NOT NULL REFERENCES ledger_transactions (id),
    payment_intent   text NOT NULL,
    cents            bigint NOT NULL CHECK (cents > 0),
    txn_key          text NOT NULL UNIQUE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    stripe_refund_id text UNIQUE,
    failure          text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX withdrawal_parts_withdrawal_idx ON withdrawal_parts (withdrawal_id);
CREATE INDEX withdrawal_parts_pending_idx ON withdrawal_parts (withdrawal_id) WHERE status = 'pending';

-- A card dispute's lifecycle. `held_cents` was taken from the wallet when it opened; `carried_cents` is what
-- the wallet no longer had, which the platform carries (booked to loss) — the client is flagged then.
CREATE TABLE disputes (
    id            text PRIMARY KEY,
    client_id     uuid NOT NULL REFERENCES users (id),
    deposit_id    uuid NOT NULL REFERENCES ledger_transactions (id),
    amount_cents  bigint NOT NULL CHECK (amount_cents >= 0),
    held_cents    bigint NOT NULL CHECK (held_cents >= 0),
    carried_cents bigint NOT NULL CHECK (carried_cents >= 0),
    fee_cents     bigint NOT NULL DEFAULT 0 CHECK (fee_cents >= 0),
    reason        text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    opened_at     timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    CHECK ((status = 'open') = (closed_at IS NULL))
);
CREATE INDEX disputes_open_idx ON disputes (client_id) WHERE status = 'open';

-- Operators' marks on accounts: suspended (cannot log in or act), flagged (a dispute the platform carried).
ALTER TABLE users
    ADD COLUMN suspended_at   timestamptz,
    ADD COLUMN suspend_reason text,
    ADD COLUMN flagged_at     timestamptz,
    ADD COLUMN flag_reason    text;

-- Every operator action: who did what to what, why, and when. Append-only like the ledger.
CREATE TABLE admin_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    admin_id    uuid NOT NULL REFERENCES users (id),
    action      text NOT NULL,
    target_kind text NOT NULL,
    target_id   text NOT NULL,
    reason      text NOT NULL CHECK (length(reason) BETWEEN 3 AND 500),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_audit_target_idx ON admin_audit (target_kind, target_id, id DESC);
CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
