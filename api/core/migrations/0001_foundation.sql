-- Foundation: accounts, server-side auth sessions, and the seed's tables.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 80),
    role          text NOT NULL CHECK (role IN ('client', 'reader', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- A login: the cookie and the bearer token both carry a random token whose SHA-256 is stored here,
-- so a database leak does not leak usable tokens, and logout revokes it for good.
CREATE TABLE auth_sessions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    user_agent  text,
    address     text
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id);

CREATE TABLE reader_rates (
    reader_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    chat_cents    integer NOT NULL DEFAULT 0 CHECK (chat_cents >= 0),
    audio_cents   integer NOT NULL DEFAULT 0 CHECK (audio_cents >= 0),
    video_cents   integer NOT NULL DEFAULT 0 CHECK (video_cents >= 0),
    flat_15_cents integer NOT NULL DEFAULT 0 CHECK (flat_15_cents >= 0),
    flat_30_cents integer NOT NULL DEFAULT 0 CHECK (flat_30_cents >= 0),
    flat_45_cents integer NOT NULL DEFAULT 0 CHECK (flat_45_cents >= 0),
    flat_60_cents integer NOT NULL DEFAULT 0 CHECK (flat_60_cents >= 0),
    message_cents integer NOT NULL DEFAULT 0 CHECK (message_cents >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reader_availability (
    reader_id  uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    status     text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline', 'busy')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The wallet balance; the ledger (billing) changes it in the same transaction as its entries.
CREATE TABLE client_balances (
    client_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance_cents bigint NOT NULL DEFAULT 0 CHECK (balance_cents >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rtc_sessions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id         uuid NOT NULL REFERENCES users (id),
    reader_id         uuid NOT NULL REFERENCES users (id),
    session_type      text NOT NULL CHECK (session_type IN ('chat', 'audio', 'video')),
    mode              text NOT NULL DEFAULT 'per_minute' CHECK (mode IN ('per_minute', 'scheduled')),
    status            text NOT NULL DEFAULT 'requested'
                      CHECK (status IN ('requested', 'accepted', 'active', 'ended',
                                        'declined', 'cancelled', 'expired')),
    rate_cents        integer NOT NULL CHECK (rate_cents >= 0),
    billable_seconds  integer NOT NULL DEFAULT 0 CHECK (billable_seconds >= 0),
    charged_cents     bigint NOT NULL DEFAULT 0 CHECK (charged_cents >= 0),
    requested_at      timestamptz NOT NULL DEFAULT now(),
    accepted_at       timestamptz,
    started_at        timestamptz,
    ended_at          timestamptz,
    end_reason        text,
    scheduled_start   timestamptz,
    scheduled_minutes integer CHECK (scheduled_minutes IN (15, 30, 45, 60)),
    CHECK (client_id <> reader_id)
);
CREATE INDEX rtc_sessions_client_idx ON rtc_sessions (client_id, requested_at DESC);
CREATE INDEX rtc_sessions_reader_idx ON rtc_sessions (reader_id, requested_at DESC);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC);
