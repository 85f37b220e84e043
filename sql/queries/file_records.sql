-- name: GetFileRecord :one
-- One file record by id.
SELECT * FROM file_records WHERE id = @id;

-- name: GetFileRecordByPath :one
-- One file record by its path.
SELECT * FROM file_records WHERE path = @path;

-- name: ListFileRecords :many
-- File records most recently accessed first; one keyset page strictly after the
-- (accessed_at, id) cursor. The access index drives it; `all_file_records` reads by these pages.
SELECT * FROM file_records
WHERE accessed_at <= @cursor_accessed_at AND (accessed_at < @cursor_accessed_at OR id < @cursor_id)
ORDER BY accessed_at DESC, id DESC
LIMIT @page_size;

-- name: UpsertFileRecord :one
-- Insert a record, or refresh size, hash, access time and metadata of the one with the same path.
-- params: typed
INSERT INTO file_records (path, size, hash, created_at, accessed_at, metadata)
VALUES (@path, @size, @hash, @created_at, @accessed_at, @metadata)
ON CONFLICT (path) DO UPDATE SET
    size = excluded.size, hash = excluded.hash,
    accessed_at = excluded.accessed_at, metadata = excluded.metadata
RETURNING *;

-- name: UpdateFileRecord :execrows
-- Overwrite every field of an existing record, found by id.
UPDATE file_records SET
    path = @path, size = @size, hash = @hash, created_at = @created_at,
    accessed_at = @accessed_at, metadata = @metadata
WHERE id = @id;

-- name: DeleteFileRecord :execrows
-- Delete one file record by id.
DELETE FROM file_records WHERE id = @id;

-- name: DeleteFileRecordByPath :execrows
-- Delete the record of one path, when its file is deleted or moved.
DELETE FROM file_records WHERE path = @path;
