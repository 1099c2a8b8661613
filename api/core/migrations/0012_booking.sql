-- Booking from the pages: a reader's weekly hours in their own time zone and the exceptions to them, from which
-- bookable times are offered (api/readings/availability.py); a booked time becomes a reader_slots row in the
-- booking's own transaction, so the no-overlap trigger of 0002 is what makes a double booking impossible.
-- And the reminders of a booked reading, due at fixed times, sent once by whichever node claims them.

-- How a reader takes bookings: their time zone (IANA name), the lengths they offer, the least notice and how far
-- ahead clients may book.
CREATE TABLE reader_schedules (
    reader_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    time_zone      text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    lengths        integer[] NOT NULL DEFAULT '{30,60}'
                   CHECK (cardinality(lengths) BETWEEN 1 AND 4 AND lengths <@ '{15,30,45,60}'::integer[]),
    notice_minutes integer NOT NULL DEFAULT 60 CHECK (notice_minutes BETWEEN 0 AND 10080),
    horizon_days   integer NOT NULL DEFAULT 28 CHECK (horizon_days BETWEEN 1 AND 90),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The weekly hours, in local minutes since midnight (0..1440, quarter hours): weekday 0 is Monday.
CREATE TABLE reader_weekly_hours (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reader_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    weekday      smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_minute smallint NOT NULL CHECK (start_minute BETWEEN 0 AND 1425 AND start_minute % 15 = 0),
    end_minute   smallint NOT NULL CHECK (end_minute BETWEEN 15 AND 1440 AND end_minute % 15 = 0),
    CHECK (start_minute < end_minute)
);
CREATE INDEX reader_weekly_hours_reader_idx ON reader_weekly_hours (reader_id, weekday);

-- One local date that differs from the week: time off (all day when start_minute is NULL) or extra hours.
CREATE TABLE reader_schedule_exceptions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reader_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day          date NOT NULL,
    available    boolean NOT NULL,
    start_minute smallint CHECK (start_minute BETWEEN 0 AND 1425 AND start_minute % 15 = 0),
    end_minute   smallint CHECK (end_minute BETWEEN 15 AND 1440 AND end_minute % 15 = 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((start_minute IS NULL) = (end_minute IS NULL)),
    CHECK (start_minute IS NULL OR start_minute < end_minute),
    CHECK (available = false OR start_minute IS NOT NULL)
);
CREATE INDEX reader_schedule_exceptions_reader_idx ON reader_schedule_exceptions (reader_id, day);

-- A booked reading's reminders (24 hours and 10 minutes before), written with the booking. A sweeper on every
-- node claims the due ones (FOR UPDATE SKIP LOCKED) and marks them sent in the transaction that stores the
-- notifications, so each is sent once, after a restart too.
CREATE TABLE booking_reminders (
    session_id uuid NOT NULL REFERENCES rtc_sessions (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('24h', '10m')),
    due_at     timestamptz NOT NULL,
    sent_at    timestamptz,
    PRIMARY KEY (session_id, kind)
);
CREATE INDEX booking_reminders_due_idx ON booking_reminders (due_at) WHERE sent_at IS NULL;

-- The "Upcoming" list reads a user's booked readings still to come.
CREATE INDEX rtc_sessions_scheduled_client_idx ON rtc_sessions (client_id, scheduled_start)
    WHERE mode = 'scheduled' AND status IN ('accepted', 'active');
CREATE INDEX rtc_sessions_scheduled_reader_idx ON rtc_sessions (reader_id, scheduled_start)
    WHERE mode = 'scheduled' AND status IN ('accepted', 'active');
