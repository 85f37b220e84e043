-- name: ListFileRecordsPage :many
-- File records in path order, with a path in [path_from, path_until), matching a glob when one
-- is given (`*` any run of characters, `?` one character, everything else itself), of a size
-- in [size_from, size_until] and accessed in [accessed_from, accessed_until) (no upper end
-- when null: no time lies past every stored one); one keyset page after cursor_path. The
-- path index drives it.
-- type: @path_glob str?
-- type: @accessed_until datetime?
SELECT * FROM file_records
WHERE path >= @path_from AND path < @path_until AND path > @cursor_path
  AND (sqlc.narg(path_glob)::text IS NULL OR path LIKE replace(replace(replace(replace(replace(
        sqlc.narg(path_glob), '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_'))
  AND size >= @size_from AND size <= @size_until
  AND accessed_at >= @accessed_from
  AND (sqlc.narg(accessed_until)::timestamptz IS NULL OR accessed_at < sqlc.narg(accessed_until))
ORDER BY path
LIMIT @page_size;

-- name: ListFileRecordsGlobPage :many
-- ListFileRecordsPage for a glob, giving the same rows: SQLite runs its variant off the event
-- loop.
-- type: @path_glob str?
-- type: @accessed_until datetime?
SELECT * FROM file_records
WHERE path >= @path_from AND path < @path_until AND path > @cursor_path
  AND (sqlc.narg(path_glob)::text IS NULL OR path LIKE replace(replace(replace(replace(replace(
        sqlc.narg(path_glob), '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_'))
  AND size >= @size_from AND size <= @size_until
  AND accessed_at >= @accessed_from
  AND (sqlc.narg(accessed_until)::timestamptz IS NULL OR accessed_at < sqlc.narg(accessed_until))
ORDER BY path
LIMIT @page_size;
