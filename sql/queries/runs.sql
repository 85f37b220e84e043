-- name: GetRun :one
-- One run by id.
SELECT * FROM runs WHERE id = @id;

-- name: InsertRun :execlastid
-- Insert one run and give back its new id.
-- params: typed
INSERT INTO runs (started_at, ended_at, labels)
VALUES (@started_at, @ended_at, @labels)
RETURNING id;

-- name: UpdateRun :execrows
-- Overwrite every field of an existing run.
UPDATE runs SET started_at = @started_at, ended_at = @ended_at, labels = @labels
WHERE id = @id;

-- name: EndRun :one
-- Set one run's end alone, unless the run starts after it; give the run as stored.
UPDATE runs SET ended_at = @ended_at
WHERE id = @id AND started_at <= @ended_at
RETURNING *;

-- name: ListRuns :many
-- Runs newest first (by start), started from started_from on; one keyset page: rows strictly
-- after the (started_at, id) cursor, which holds a filter's upper end too (`upper_bounds`): a
-- bound of its own, exclusive, passed over runs started at the end of time. runs_started_idx
-- drives it.
SELECT * FROM runs
WHERE started_at >= @started_from
  AND started_at <= @cursor_started_at AND (started_at < @cursor_started_at OR id < @cursor_id)
ORDER BY started_at DESC, id DESC
LIMIT @page_size;

-- name: LastSavedRuns :many
-- The runs saved last, the last first: by id, which each save takes after every other.
SELECT * FROM runs
ORDER BY id DESC
LIMIT @page_size;

-- name: DeleteRun :execrows
-- Delete one run by id; its results go first, with DeleteRunResults.
DELETE FROM runs WHERE id = @id;
