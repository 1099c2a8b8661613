-- Readings: the rules the database itself enforces (one open reading per client, one live reading per
-- reader), the runtime's bookkeeping (heartbeat, minutes, refunds), the readers' chosen availability,
-- chat transcripts. Columns are added with IF NOT EXISTS: billing's migration may add the same ones.

ALTER TABLE rtc_sessions
    ADD COLUMN IF NOT EXISTS heartbeat_at     timestamptz,
    ADD COLUMN IF NOT EXISTS minutes_charged  integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS refunded_cents   bigint  NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS earned_cents     bigint  NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS expires_at       timestamptz,
    ADD COLUMN IF NOT EXISTS scheduled_end    timestamptz;

-- A client has at most one pay-per-minute reading in flight (requested, accepted or active)...
CREATE UNIQUE INDEX IF NOT EXISTS rtc_sessions_one_open_per_client ON rtc_sessions (client_id)
    WHERE mode = 'per_minute' AND status IN ('requested', 'accepted', 'active');
-- ...and a reader holds at most one live reading: the active one, or the per-minute one just accepted.
CREATE UNIQUE INDEX IF NOT EXISTS rtc_sessions_one_live_per_reader ON rtc_sessions (reader_id)
    WHERE status = 'active' OR (mode = 'per_minute' AND status = 'accepted');
-- The expiry sweep and start-up recovery look only at these few rows.
CREATE INDEX IF NOT EXISTS rtc_sessions_requested_idx ON rtc_sessions (expires_at) WHERE status = 'requested';
CREATE INDEX IF NOT EXISTS rtc_sessions_open_idx ON rtc_sessions (status) WHERE status IN ('accepted', 'active');

-- What the reader chose (online/offline); `status` shows `busy` on top of it while a reading holds them.
ALTER TABLE reader_availability
    ADD COLUMN IF NOT EXISTS chosen_status text NOT NULL DEFAULT 'offline'
        CHECK (chosen_status IN ('online', 'offline'));

-- A reading's chat, readable by its two participants only.
CREATE TABLE IF NOT EXISTS reading_messages (
    id         bigserial PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES rtc_sessions (id) ON DELETE CASCADE,
    sender_id  uuid NOT NULL REFERENCES users (id),
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reading_messages_session_idx ON reading_messages (session_id, id);

CREATE INDEX IF NOT EXISTS notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;
