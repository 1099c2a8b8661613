-- Billing: the double-entry ledger, the meter state a reading persists, reader slots, Stripe bookkeeping.

-- A movement of money. `key` makes every movement idempotent: a retry, a crash or a second node that
-- repeats a movement finds its key taken and moves nothing.
CREATE TABLE ledger_transactions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key            text NOT NULL UNIQUE CHECK (length(key) BETWEEN 1 AND 200),
    kind           text NOT NULL CHECK (kind IN (
                       'deposit', 'reading_minute', 'scheduled_reading', 'gift', 'message',
                       'refund', 'stripe_refund', 'dispute', 'dispute_reinstated')),
    amount_cents   bigint NOT NULL CHECK (amount_cents >= 0),
    reader_cents   bigint NOT NULL DEFAULT 0,
    platform_cents bigint NOT NULL DEFAULT 0,
    -- What a withdrawal could not take from a spent wallet: booked to the platform's loss account.
    loss_cents     bigint NOT NULL DEFAULT 0 CHECK (loss_cents >= 0),
    client_id      uuid REFERENCES users (id),
    reader_id      uuid REFERENCES users (id),
    -- The charge a refund gives back, the deposit a Stripe refund or dispute takes back, the dispute a
    -- reinstatement reverses.
    original_id    uuid REFERENCES ledger_transactions (id),
    source         text CHECK (source IN ('stripe', 'manual')),
    operator       text,
    ref            text,
    memo           text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_transactions_ref_idx ON ledger_transactions (ref) WHERE ref IS NOT NULL;
CREATE INDEX ledger_transactions_original_idx ON ledger_transactions (original_id) WHERE original_id IS NOT NULL;

-- The entries of a transaction: one per account it touches, summing to zero. Accounts are an account
-- kind plus, for a client's wallet and a reader's earnings, the user who owns it:
--   wallet (client)  earnings (reader)  revenue (platform)  stripe (external: money in and out by card)
--   adjustments (external: manual credits by an operator)  loss (platform: withdrawals a spent wallet could
--   not cover)
-- A positive amount adds to the account's balance. Without per-account balance rows for the platform
-- accounts no row is hot: concurrent charges only contend on their own wallet's client_balances row.
CREATE TABLE ledger_entries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txn_id       uuid NOT NULL REFERENCES ledger_transactions (id),
    account      text NOT NULL CHECK (account IN ('wallet', 'earnings', 'revenue', 'stripe', 'adjustments', 'loss')),
    owner_id     uuid,
    amount_cents bigint NOT NULL CHECK (amount_cents <> 0),
    CHECK ((account IN ('wallet', 'earnings')) = (owner_id IS NOT NULL))
);
CREATE INDEX ledger_entries_txn_idx ON ledger_entries (txn_id);
CREATE INDEX ledger_entries_owner_idx ON ledger_entries (owner_id, id) WHERE owner_id IS NOT NULL;

-- Every transaction balances: checked when its database transaction commits (deferred), so entries may be
-- written in any order but never committed unbalanced.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total numeric;
BEGIN
    SELECT sum(amount_cents) INTO total FROM ledger_entries WHERE txn_id = NEW.txn_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced by % cents', NEW.txn_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- The ledger is append-only: a mistake is corrected by a new transaction, never by editing history.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- Balances per account, for operators and reports (the wallet's is also kept in client_balances).
CREATE VIEW ledger_accounts AS
    SELECT account, owner_id, sum(amount_cents)::bigint AS balance_cents, count(*) AS entries
    FROM ledger_entries GROUP BY account, owner_id;

-- What a running reading's meter persists, so a crash can be settled from the last known state.
ALTER TABLE rtc_sessions
    ADD COLUMN meter_billable_seconds double precision NOT NULL DEFAULT 0 CHECK (meter_billable_seconds >= 0),
    ADD COLUMN meter_minutes_charged  integer NOT NULL DEFAULT 0 CHECK (meter_minutes_charged >= 0),
    ADD COLUMN meter_heartbeat_at     timestamptz;
CREATE INDEX rtc_sessions_active_idx ON rtc_sessions (meter_heartbeat_at) WHERE status = 'active';

-- A reader's open time for scheduled readings. A slot is booked by at most one reading (unique
-- session_id, set only while it is NULL), and a reader's slots never overlap (trigger below).
CREATE TABLE reader_slots (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reader_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    starts_at  timestamptz NOT NULL,
    minutes    integer NOT NULL CHECK (minutes IN (15, 30, 45, 60)),
    session_id uuid UNIQUE REFERENCES rtc_sessions (id),
    booked_at  timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((session_id IS NULL) = (booked_at IS NULL))
);
CREATE INDEX reader_slots_reader_idx ON reader_slots (reader_id, starts_at);

-- No two slots of one reader overlap. An exclusion constraint would need btree_gist, which the embedded
-- PostgreSQL does not ship; a per-reader transaction lock makes this check race-free instead.
CREATE FUNCTION reader_slots_no_overlap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('reader_slots:' || NEW.reader_id::text, 0));
    IF EXISTS (
        SELECT 1 FROM reader_slots s
        WHERE s.reader_id = NEW.reader_id AND s.id <> NEW.id
          AND tstzrange(s.starts_at, s.starts_at + make_interval(mins => s.minutes))
              && tstzrange(NEW.starts_at, NEW.starts_at + make_interval(mins => NEW.minutes))
    ) THEN
        RAISE EXCEPTION 'slot overlaps another slot of this reader'
            USING ERRCODE = 'exclusion_violation', CONSTRAINT = 'reader_slots_no_overlap';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER reader_slots_no_overlap BEFORE INSERT OR UPDATE OF reader_id, starts_at, minutes ON reader_slots
    FOR EACH ROW EXECUTE FUNCTION reader_slots_no_overlap();

-- Checkout Sessions we created, so a webhook's payment can be matched to the wallet that asked for it.
CREATE TABLE stripe_checkouts (
    id           text PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES users (id),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_checkouts_client_idx ON stripe_checkouts (client_id, created_at DESC);

-- Every Stripe event handled, once: written in the same transaction as the money it moved.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
