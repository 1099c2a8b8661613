-- One owner per reading: the runtime that runs it holds a lease in its row. lease_owner is the node (one
-- `soulseer serve` process) holding it, lease_epoch the fencing token (incremented on every acquisition,
-- and on every state change made without a runtime), lease_expires_at the database's clock when it
-- lapses unless renewed. Every charge, refund and state write of a runtime is conditional on its epoch.
-- No index on lease_expires_at: it is renewed every second, and an indexed column would make every
-- renewal a non-HOT update; recovery scans the few open rows through rtc_sessions_open_idx (0003).
ALTER TABLE rtc_sessions
    ADD COLUMN lease_owner      uuid,
    ADD COLUMN lease_epoch      bigint NOT NULL DEFAULT 0 CHECK (lease_epoch >= 0),
    ADD COLUMN lease_expires_at timestamptz;
