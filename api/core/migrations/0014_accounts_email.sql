-- Accounts by e-mail: verified addresses, signed single-use links (verify, reset a password, change the address),
-- deletion that erases personal data but keeps the ledger (the account row stays, anonymised), and a durable
-- outbox for every mail (receipts, reminders, links), sent by a worker on each node.

ALTER TABLE users
    ADD COLUMN email_verified_at timestamptz,
    ADD COLUMN deleted_at        timestamptz;

-- A link mailed to `email` for `purpose`. The link carries the id, the expiry and an HMAC of both (checked before
-- any lookup); the row makes it single-use (`used_at`, set by the one UPDATE that accepts it).
CREATE TABLE email_tokens (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify', 'reset', 'change')),
    email      text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);

-- Every mail, written in the transaction of what it reports, sent later (and again after a failure).
CREATE TABLE mail_outbox (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    to_address      text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 254),
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    body            text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;

-- Keys the server makes for itself when the operator gave none (the link-signing key without
-- SOULSEER_SECRET_KEY), shared by every node of the database.
CREATE TABLE server_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
