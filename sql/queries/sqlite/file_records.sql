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
  AND (@path_glob IS NULL OR path GLOB replace(@path_glob, '[', '[[]'))
  AND size >= @size_from AND size <= @size_until
  AND accessed_at >= @accessed_from AND (@accessed_until IS NULL OR accessed_at < @accessed_until)
ORDER BY path
LIMIT @page_size;

-- name: ListFileRecordsGlobPage :many
-- ListFileRecordsPage for a glob, giving the same rows: it runs off the event loop. GLOB
-- compares a path in one step of the engine, a few ms for a long literal run after a `*` over
-- a path of 1,000 characters, and the loop's budget looks at the time only every 1,000 steps.
-- runs: long
-- type: @path_glob str?
-- type: @accessed_until datetime?
SELECT * FROM file_records
WHERE path >= @path_from AND path < @path_until AND path > @cursor_path
  AND (@path_glob IS NULL OR path GLOB replace(@path_glob, '[', '[[]'))
  AND size >= @size_from AND size <= @size_until
  AND accessed_at >= @accessed_from AND (@accessed_until IS NULL OR accessed_at < @accessed_until)
ORDER BY path
LIMIT @page_size;
