-- Recovery finds the active readings by this index. It was first on meter_heartbeat_at, which made every
-- heartbeat (a column in the index) a non-HOT update; on id, heartbeats and minute charges stay HOT.
DROP INDEX IF EXISTS rtc_sessions_active_idx;
CREATE INDEX rtc_sessions_active_idx ON rtc_sessions (id) WHERE status = 'active';
