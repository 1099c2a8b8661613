-- Web: what a reader shows clients on the home page, and the reader's auto-accept choice.

CREATE TABLE reader_profiles (
    reader_id   uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    bio         text NOT NULL DEFAULT '' CHECK (length(bio) <= 1000),
    specialties text[] NOT NULL DEFAULT '{}' CHECK (cardinality(specialties) <= 8),
    auto_accept boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
