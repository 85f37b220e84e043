-- name: ListTestResultsByType :many
-- Results of any of the given types, newest first, created from created_from on;
-- one keyset page after the (created_at, id) cursor. The type index drives it.
-- type: @test_types str[]
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata, r.run_id, r.test_id
FROM unnest(@test_types::text[]) AS wanted (test_type)
CROSS JOIN LATERAL (
    SELECT * FROM test_results AS t
    WHERE t.test_type = wanted.test_type
      AND t.created_at >= @created_from
          AND t.created_at <= @cursor_created_at AND (t.created_at < @cursor_created_at OR t.id < @cursor_id)
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT @page_size
) AS r
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: ListTestResultsByStatus :many
-- Results of any of the given statuses (and, when given, types), newest first, created in
-- from created_from on; one keyset page after the (created_at, id) cursor. The status
-- index drives it.
-- type: @statuses str[]
-- type: @test_types str[]?
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata, r.run_id, r.test_id
FROM unnest(@statuses::text[]) AS wanted (status)
CROSS JOIN LATERAL (
    SELECT * FROM test_results AS t
    WHERE t.status = wanted.status
      AND (sqlc.narg(test_types)::text[] IS NULL OR t.test_type = ANY(sqlc.narg(test_types)::text[]))
      AND t.created_at >= @created_from
          AND t.created_at <= @cursor_created_at AND (t.created_at < @cursor_created_at OR t.id < @cursor_id)
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT @page_size
) AS r
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: ListTestResultsByMetadata :many
-- Results whose metadata holds every given key with an equal scalar value (and, when given,
-- of the given statuses and types), newest first, created from created_from on;
-- one keyset page after the (created_at, id) cursor. The metadata GIN index drives it: the
-- subquery (fenced by OFFSET 0) finds the matches, then they are sorted, so that no plan
-- walks the time index instead and tests every row's metadata; and its other conditions
-- cannot use an index of their own.
-- type: @metadata json
-- type: @statuses str[]?
-- type: @test_types str[]?
-- type: @created_from datetime?
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata, r.run_id, r.test_id
FROM (
    SELECT * FROM test_results
    WHERE metadata @> @metadata
      AND (sqlc.narg(statuses)::text[] IS NULL OR status = ANY(sqlc.narg(statuses)::text[]))
      AND (sqlc.narg(test_types)::text[] IS NULL OR test_type = ANY(sqlc.narg(test_types)::text[]))
      AND (sqlc.narg(created_from)::timestamptz IS NULL OR created_at >= sqlc.narg(created_from))
      AND (created_at < @cursor_created_at OR (created_at = @cursor_created_at AND id < @cursor_id))
    OFFSET 0
) AS r
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: SearchTestResults :many
-- Results whose output or error message match a tsquery, best first (by ts_rank_cd; ties newest first), filtered
-- like the listings; one page, `skip` rows in. Only the match can use an index (the GIN index
-- of search_vector): the filters are checked on the rows it finds. The page is ranked on ids,
-- times and scores alone, then its rows are read.
-- type: @match str
-- type: @statuses str[]?
-- type: @test_types str[]?
-- type: @created_from datetime?
-- type: @created_until datetime?
-- type: @metadata json?
-- type: score float!
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata, r.run_id, r.test_id,
       hits.score
FROM (
    SELECT m.id AS id,
           -- Ranked by the phrases' words, not their order: cover density over a phrase
           -- costs more than quadratic time in its length (64 words, 100 rows: 15 s).
           ts_rank_cd(m.search_vector, to_tsquery('simple', replace(@match, '<->', '&')), 1)::double precision AS score
    FROM test_results AS m
    WHERE m.search_vector @@ to_tsquery('simple', @match)
      AND (sqlc.narg(statuses)::text[] IS NULL OR m.status = ANY(sqlc.narg(statuses)::text[]))
      AND (sqlc.narg(test_types)::text[] IS NULL OR m.test_type = ANY(sqlc.narg(test_types)::text[]))
      AND (sqlc.narg(created_from)::timestamptz IS NULL OR m.created_at >= sqlc.narg(created_from))
      AND (sqlc.narg(created_until)::timestamptz IS NULL OR m.created_at < sqlc.narg(created_until))
      AND (sqlc.narg(metadata)::jsonb IS NULL OR m.metadata @> sqlc.narg(metadata)::jsonb)
    ORDER BY score DESC, m.created_at DESC, m.id DESC
    LIMIT @page_size OFFSET @skip
) AS hits
JOIN test_results AS r ON r.id = hits.id
ORDER BY hits.score DESC, r.created_at DESC, r.id DESC;

-- name: PlaceRunResults :execrows
-- One imported run's results put in its span, in one statement, once the report's end gives
-- the span (reports.py): a result at @unplaced, or before @first, takes the run's start; one
-- after @last its end; any other is moved by @shift_seconds and @shift_micros (0 to 999,999),
-- exactly: each a whole number of its unit.
-- type: @shift_seconds int
-- type: @shift_micros int
-- type: @run_id !
UPDATE test_results SET created_at = CASE
    WHEN created_at = @unplaced OR created_at < @first THEN @started_at
    WHEN created_at > @last THEN @ended_at
    ELSE created_at + sqlc.arg(shift_seconds)::bigint * INTERVAL '1 second'
         + sqlc.arg(shift_micros)::bigint * INTERVAL '1 microsecond'
END
WHERE run_id = @run_id;

-- name: DeleteTestResultsBeforeBatch :execrows
-- Retention, one bounded batch: delete the oldest results created before a cut-off, at most
-- batch_size of them. Each batch is a short statement of its own, so that no writer waits
-- long behind retention: the full-text index must read each deleted row's text again.
-- On SQLite it runs off the event loop: FTS5 may merge index segments inside it, at length.
-- The time is checked again on the row deleted: on PostgreSQL, a row that another writer
-- moved past the cut-off while this one waited for its lock is read again, and kept.
-- PostgreSQL locks the batch's rows in the order of the listing (FOR UPDATE under the LIMIT),
-- before the DELETE takes them in the order of its plan, which changes with the batch size:
-- two retentions at once took them in two orders and deadlocked.
-- runs: long
DELETE FROM test_results
WHERE id IN (
    SELECT expired.id FROM test_results AS expired
    WHERE expired.created_at < @cutoff
    ORDER BY expired.created_at, expired.id
    LIMIT @batch_size
    FOR UPDATE
) AND created_at < @cutoff;

-- name: DeleteRunResults :execrows
-- Delete the results of one run: said apart from the run, so that the caches are told of
-- both tables (the foreign key would cascade, unseen by the generator). Its rows are locked
-- in retention's order first (FOR UPDATE under the ORDER BY), so that a retention batch
-- over the same rows waits for it, or it for the batch, and neither deadlocks.
DELETE FROM test_results
WHERE id IN (
    SELECT mine.id FROM test_results AS mine
    WHERE mine.run_id = @id
    ORDER BY mine.created_at, mine.id
    FOR UPDATE
);
