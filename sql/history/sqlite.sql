-- The migration runner's own history table, made in the transaction of the first migration.
CREATE TABLE IF NOT EXISTS persistence_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  TIMESTAMP_TEXT NOT NULL,
    duration_ms REAL NOT NULL
);
