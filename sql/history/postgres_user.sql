-- The history of a user's own chain of migrations, kept apart from the package's own, so that
-- each chain numbers its files from 0001. Made in the transaction of the chain's first migration.
CREATE TABLE IF NOT EXISTS persistence_user_migrations (
    version     bigint PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL
);
