-- name: ListAppliedUserMigrations :many
-- Every applied migration of the user's own chain, oldest first.
SELECT * FROM persistence_user_migrations ORDER BY version;

-- name: RecordUserMigration :exec
-- Record one applied migration of the user's chain, in the migration's own transaction.
INSERT INTO persistence_user_migrations (version, name, checksum, applied_at, duration_ms)
VALUES (@version, @name, @checksum, @applied_at, @duration_ms);

-- name: AcceptUserMigrationChecksum :execrows
-- Accept an edited file of the user's chain: record its new checksum without running it again.
UPDATE persistence_user_migrations SET checksum = @checksum, name = @name WHERE version = @version;

-- name: ForgetUserMigration :execrows
-- Accept a deleted file of the user's chain: drop its history row; its schema stays.
DELETE FROM persistence_user_migrations WHERE version = @version;
