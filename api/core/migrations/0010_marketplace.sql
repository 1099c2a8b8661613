-- The marketplace: what clients choose a reader by. Profile photos and languages, verified reviews (with the
-- reader's reply and the operators' hiding), each reader's rating kept in step with them, favourites and
-- "notify me when online", tips after a reading, and the indexes of the home page's search.

ALTER TABLE reader_profiles
    ADD COLUMN languages text[] NOT NULL DEFAULT '{}' CHECK (cardinality(languages) <= 8);

-- A reader's photo, already checked, resized and stripped of metadata (api/marketplace/photos.py). In the
-- database so that every node serves it; `version` (a digest of the bytes) makes its URL change with it.
CREATE TABLE reader_photos (
    reader_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    image        bytea NOT NULL CHECK (octet_length(image) <= 1048576),
    content_type text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/webp')),
    version      text NOT NULL,
    width        integer NOT NULL,
    height       integer NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A client's review of one reading they paid for: at most one per reading. Hidden reviews are kept (and
-- their hiding audited in admin_audit); they count nowhere.
CREATE TABLE reviews (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id  uuid NOT NULL UNIQUE REFERENCES rtc_sessions (id),
    client_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reader_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    stars       smallint NOT NULL CHECK (stars BETWEEN 1 AND 5),
    body        text NOT NULL DEFAULT '' CHECK (length(body) <= 1000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    edited_at   timestamptz,
    reply       text CHECK (length(reply) BETWEEN 1 AND 1000),
    replied_at  timestamptz,
    hidden_at   timestamptz,
    hidden_by   uuid REFERENCES users (id),
    CHECK ((reply IS NULL) = (replied_at IS NULL)),
    CHECK ((hidden_at IS NULL) = (hidden_by IS NULL))
);
-- A reader's visible reviews, newest first (the profile page).
CREATE INDEX reviews_reader_idx ON reviews (reader_id, created_at DESC) WHERE hidden_at IS NULL;
CREATE INDEX reviews_client_idx ON reviews (client_id, created_at DESC);

-- Each reader's visible reviews summed up, written in the same transaction as the review it counts (a
-- trigger), so that a card's rating costs one row and not an aggregate over a million reviews.
CREATE TABLE reader_ratings (
    reader_id   uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    reviews     integer NOT NULL DEFAULT 0 CHECK (reviews >= 0),
    stars_total bigint NOT NULL DEFAULT 0 CHECK (stars_total >= 0),
    rating      numeric(3, 2) GENERATED ALWAYS AS
                (CASE WHEN reviews > 0 THEN round(stars_total::numeric / reviews, 2) END) STORED
);

CREATE FUNCTION reader_ratings_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.hidden_at IS NULL THEN
        UPDATE reader_ratings SET reviews = reviews - 1, stars_total = stars_total - OLD.stars
        WHERE reader_id = OLD.reader_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.hidden_at IS NULL THEN
        INSERT INTO reader_ratings (reader_id, reviews, stars_total) VALUES (NEW.reader_id, 1, NEW.stars)
        ON CONFLICT (reader_id) DO UPDATE SET reviews = reader_ratings.reviews + 1,
            stars_total = reader_ratings.stars_total + EXCLUDED.stars_total;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reviews_rating AFTER INSERT OR DELETE OR UPDATE OF stars, hidden_at ON reviews
    FOR EACH ROW EXECUTE FUNCTION reader_ratings_follow();

-- A client's favourite readers; a favourite going online alerts the client (at most once an hour per reader).
CREATE TABLE favourites (
    client_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reader_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, reader_id),
    CHECK (client_id <> reader_id)
);
CREATE INDEX favourites_reader_idx ON favourites (reader_id);

-- "Notify me once": the next time the reader goes online, the client hears of it and the watch is gone.
CREATE TABLE online_watches (
    client_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reader_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, reader_id),
    CHECK (client_id <> reader_id)
);
CREATE INDEX online_watches_reader_idx ON online_watches (reader_id);

-- When each client was last alerted that a reader went online (the once-an-hour rule).
CREATE TABLE online_alerts (
    client_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reader_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    alerted_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, reader_id)
);

-- Readers who just went online, whatever wrote their availability (the dashboard, a stream, the end of a
-- reading, the demo): an outbox that one node's alert worker claims and empties (api/marketplace/online_alerts.py).
CREATE TABLE reader_online_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reader_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION reader_online_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'online' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'online') THEN
        INSERT INTO reader_online_events (reader_id) VALUES (NEW.reader_id);
        PERFORM pg_notify('reader_online', NEW.reader_id::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reader_availability_online AFTER INSERT OR UPDATE OF status ON reader_availability
    FOR EACH ROW EXECUTE FUNCTION reader_online_event();

-- A tip after a reading: a gift from the catalogue to the reader, without a stream. `request_id` is the
-- client's: a retry finds this row; the ledger movement (kind gift, key tip:{clientId}:{requestId}) commits with it.
CREATE TABLE reading_tips (
    id            uuid PRIMARY KEY,
    session_id    uuid NOT NULL REFERENCES rtc_sessions (id),
    client_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reader_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    gift_id       uuid NOT NULL REFERENCES gifts (id),
    price_cents   integer NOT NULL CHECK (price_cents > 0),
    request_id    text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 64),
    ledger_key    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, request_id)
);
CREATE INDEX reading_tips_session_idx ON reading_tips (session_id);

-- The home page's search: readers by newest, by specialty (case-insensitively) and by language.
CREATE FUNCTION lower_labels(text[]) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(array_agg(lower(x)), '{}') FROM unnest($1) AS x $$;
CREATE INDEX reader_profiles_specialties_idx ON reader_profiles USING gin (lower_labels(specialties));
CREATE INDEX users_readers_newest_idx ON users (created_at DESC) WHERE role = 'reader';
CREATE INDEX reader_ratings_rating_idx ON reader_ratings (rating DESC NULLS LAST, reviews DESC);
