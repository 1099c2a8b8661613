-- Readings: the rules the database itself enforces (one open reading per client, one live reading per
-- reader), request expiry, the readers' chosen availability, chat transcripts. (The meter's persisted
-- state, meter_* columns, is billing's: 0002.)

ALTER TABLE rtc_sessions
    ADD COLUMN expires_at     timestamptz,
    ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0);

-- A client has at most one pay-per-minute reading in flight (requested, accepted or active)...
CREATE UNIQUE INDEX rtc_sessions_one_open_per_client ON rtc_sessions (client_id)
    WHERE mode = 'per_minute' AND status IN ('requested', 'accepted', 'active');
-- ...and a reader holds at most one live reading: the active one, or the per-minute one just accepted.
CREATE UNIQUE INDEX rtc_sessions_one_live_per_reader ON rtc_sessions (reader_id)
    WHERE status = 'active' OR (mode = 'per_minute' AND status = 'accepted');
-- The expiry sweep and start-up recovery look only at these few rows.
CREATE INDEX rtc_sessions_requested_idx ON rtc_sessions (expires_at) WHERE status = 'requested';
CREATE INDEX rtc_sessions_open_idx ON rtc_sessions (status) WHERE status IN ('accepted', 'active');

-- What the reader chose (online/offline); `status` shows `busy` on top of it while a reading holds them.
ALTER TABLE reader_availability
    ADD COLUMN chosen_status text NOT NULL DEFAULT 'offline'
        CHECK (chosen_status IN ('online', 'offline'));

-- A reading's chat, readable by its two participants only.
CREATE TABLE reading_messages (
    id         bigserial PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES rtc_sessions (id) ON DELETE CASCADE,
    sender_id  uuid NOT NULL REFERENCES users (id),
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reading_messages_session_idx ON reading_messages (session_id, id);

CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;
