-- The intro offer (billing/intro_offer.py): a client's first pay-per-minute reading with each of their first K
-- readers starts with N free minutes, which the platform's promotion account pays the reader at their usual share.

-- A free minute is an `intro_minute` movement: promotion -> the reader's earnings, under the minute's own key
-- (`reading:{session}:minute:{i}`), so a minute is either charged or given, never both. The kind and account
-- lists are extended as they stand (other migrations extend them too), not rewritten.
DO $$
DECLARE
    def text;
BEGIN
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint WHERE conname = 'ledger_transactions_kind_check';
    ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
    EXECUTE 'ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check '
            || replace(def, 'ARRAY[', 'ARRAY[''intro_minute''::text, ');
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint WHERE conname = 'ledger_entries_account_check';
    ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_check;
    EXECUTE 'ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_account_check '
            || replace(def, 'ARRAY[', 'ARRAY[''promotion''::text, ');
END
$$;

-- The free minutes a reading was granted when it was requested (0: none); the meter gives them first.
ALTER TABLE rtc_sessions ADD COLUMN intro_minutes integer NOT NULL DEFAULT 0 CHECK (intro_minutes BETWEEN 0 AND 60);

-- One grant per client and reader, ever: the primary key is the rule. Written with the reading that uses it.
CREATE TABLE intro_offers (
    client_id  uuid NOT NULL REFERENCES users (id),
    reader_id  uuid NOT NULL REFERENCES users (id),
    session_id uuid NOT NULL UNIQUE REFERENCES rtc_sessions (id),
    minutes    integer NOT NULL CHECK (minutes BETWEEN 1 AND 60),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, reader_id)
);

-- A grant whose reading ends without its first minute given (declined, cancelled, expired, never started) is
-- handed back, so the client keeps the offer for that reader. In the database, so no ending path can forget it.
CREATE FUNCTION intro_offers_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM intro_offers WHERE session_id = NEW.id
        AND NOT EXISTS (SELECT 1 FROM ledger_transactions WHERE key = 'reading:' || NEW.id::text || ':minute:0');
    RETURN NULL;
END
$$;
CREATE TRIGGER intro_offers_release AFTER UPDATE OF status ON rtc_sessions
    FOR EACH ROW WHEN (NEW.intro_minutes > 0 AND NEW.status IN ('ended', 'declined', 'cancelled', 'expired'))
    EXECUTE FUNCTION intro_offers_release();
