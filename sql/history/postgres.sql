-- The migration runner's own history table, made in the transaction of the first migration.
CREATE TABLE IF NOT EXISTS persistence_migrations (
    version     bigint PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL
);
