-- name: ListAppliedMigrations :many
-- Every applied migration, oldest first.
SELECT * FROM persistence_migrations ORDER BY version;

-- name: RecordMigration :exec
-- Record one applied migration, in the same transaction as the migration itself.
INSERT INTO persistence_migrations (version, name, checksum, applied_at, duration_ms)
VALUES (@version, @name, @checksum, @applied_at, @duration_ms);

-- name: AcceptMigrationChecksum :execrows
-- Accept an edited migration file: record its new checksum without running it again.
UPDATE persistence_migrations SET checksum = @checksum, name = @name WHERE version = @version;

-- name: ForgetMigration :execrows
-- Accept a deleted migration file: drop its history row. The schema it made is left as it is.
DELETE FROM persistence_migrations WHERE version = @version;
