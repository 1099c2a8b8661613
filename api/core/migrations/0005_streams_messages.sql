-- Live streams with paid gifts, and premium (paid) messages between a client and a reader.
-- Money itself lives in billing's ledger; these rows point at its transactions by id and idempotency key.

CREATE TABLE streams (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reader_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 120),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    status      text NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'ended')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    CHECK ((status = 'ended') = (ended_at IS NOT NULL))
);
-- A reader is live at most once at a time.
CREATE UNIQUE INDEX streams_one_live_per_reader ON streams (reader_id) WHERE status = 'live';
CREATE INDEX streams_live_idx ON streams (started_at DESC) WHERE status = 'live';
CREATE INDEX streams_reader_idx ON streams (reader_id, started_at DESC);

-- The gift catalogue. ``icon`` is an emoji or the name of a built-in SVG (web/static/icons/gifts/NAME.svg).
CREATE TABLE gifts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    price_cents integer NOT NULL CHECK (price_cents BETWEEN 1 AND 1000000),
    icon        text NOT NULL CHECK (length(icon) BETWEEN 1 AND 40),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX gifts_name_key ON gifts (lower(name));

INSERT INTO gifts (name, price_cents, icon) VALUES
    ('Rose', 100, 'rose'),
    ('Candle', 200, 'candle'),
    ('Lucky Star', 500, 'star'),
    ('Crystal Ball', 1000, 'crystal-ball'),
    ('Full Moon', 2500, 'moon');

-- One sent gift. ``request_id`` is the sender's idempotency token: a retry finds this row instead of paying twice.
-- The price is copied from the catalogue at send time (the catalogue may change later).
CREATE TABLE gift_sends (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stream_id     uuid NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    sender_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    gift_id       uuid NOT NULL REFERENCES gifts (id),
    request_id    text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 64),
    price_cents   integer NOT NULL CHECK (price_cents > 0),
    ledger_txn_id text NOT NULL,
    ledger_key    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sender_id, request_id)
);
CREATE INDEX gift_sends_stream_idx ON gift_sends (stream_id, sender_id);

-- A conversation between one client and one reader (at most one per pair).
CREATE TABLE message_threads (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reader_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, reader_id),
    CHECK (client_id <> reader_id)
);
CREATE INDEX message_threads_reader_idx ON message_threads (reader_id, last_message_at DESC);
CREATE INDEX message_threads_client_idx ON message_threads (client_id, last_message_at DESC);

-- A message. A client's message to a reader who charges for messages is paid when sent (``price_cents`` > 0,
-- ledger key ``message:{id}``). A reader's reply marks the paid messages it answers in time (``answered_at``);
-- one left unanswered past the deadline is refunded once (``refund_key`` = ``message-refund:{id}``,
-- ``refunded_at`` set in the same transaction as the ledger refund).
CREATE TABLE messages (
    id            uuid PRIMARY KEY,
    thread_id     uuid NOT NULL REFERENCES message_threads (id) ON DELETE CASCADE,
    sender_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body          text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    request_id    text CHECK (length(request_id) BETWEEN 1 AND 64),
    price_cents   integer NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    ledger_key    text UNIQUE,
    ledger_txn_id text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    read_at       timestamptz,
    answered_at   timestamptz,
    refund_key    text UNIQUE,
    refunded_at   timestamptz,
    refunded_cents integer CHECK (refunded_cents >= 0),
    CHECK ((price_cents = 0) = (ledger_key IS NULL)),
    CHECK ((refunded_at IS NULL) = (refund_key IS NULL)),
    UNIQUE (sender_id, request_id)
);
CREATE INDEX messages_thread_idx ON messages (thread_id, created_at);
CREATE INDEX messages_unread_idx ON messages (thread_id, sender_id) WHERE read_at IS NULL;
-- What the refund sweeper scans: paid messages neither answered in time nor refunded yet.
CREATE INDEX messages_refundable_idx ON messages (created_at)
    WHERE price_cents > 0 AND answered_at IS NULL AND refunded_at IS NULL;
