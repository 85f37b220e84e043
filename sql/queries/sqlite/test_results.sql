-- name: ListTestResultsByType :many
-- Results of any of the given types, newest first, created from created_from on;
-- one keyset page after the (created_at, id) cursor. The type index drives it: each type's
-- page is read from it (the correlated IN, as PostgreSQL's LATERAL), then the pages are
-- merged. Filtered as it walked the time index, a type no result has read every row of the
-- time range (150 ms over 500,000 results, for each page).
-- type: @test_types str[]
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata, r.run_id, r.test_id
FROM json_each(@test_types) AS wanted
JOIN test_results AS r ON r.id IN (
    SELECT t.id FROM test_results AS t
    WHERE t.test_type = wanted.value
      AND t.created_at >= @created_from
      AND t.created_at <= @cursor_created_at AND (t.created_at < @cursor_created_at OR t.id < @cursor_id)
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT @page_size
)
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: ListTestResultsByStatus :many
-- Results of any of the given statuses (and, when given, types), newest first, created in
-- from created_from on; one keyset page after the (created_at, id) cursor. The status
-- index drives it, a page of each status read from it and the pages merged, as by type.
-- type: @statuses str[]
-- type: @test_types str[]?
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata, r.run_id, r.test_id
FROM json_each(@statuses) AS wanted
JOIN test_results AS r ON r.id IN (
    SELECT t.id FROM test_results AS t
    WHERE t.status = wanted.value
      AND (@test_types IS NULL OR t.test_type IN (SELECT value FROM json_each(@test_types)))
      AND t.created_at >= @created_from
      AND t.created_at <= @cursor_created_at AND (t.created_at < @cursor_created_at OR t.id < @cursor_id)
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT @page_size
)
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: ListTestResultsByMetadata :many
-- Results whose metadata holds every given key with an equal scalar value (and, when given,
-- of the given statuses and types), newest first, created from created_from on;
-- one keyset page after the (created_at, id) cursor. Numbers compare by value, as in jsonb.
-- type: @metadata json
-- type: @statuses str[]?
-- type: @test_types str[]?
-- type: @created_from datetime?
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata, r.run_id, r.test_id
FROM test_results AS r
WHERE NOT EXISTS (
      SELECT 1 FROM json_each(@metadata) AS wanted
      WHERE NOT EXISTS (
          SELECT 1 FROM json_each(r.metadata) AS have
          WHERE have.key = wanted.key
            AND (have.type = wanted.type
                 OR (have.type IN ('integer', 'real') AND wanted.type IN ('integer', 'real')))
            AND have.atom IS wanted.atom
      )
  )
  AND (@statuses IS NULL OR r.status IN (SELECT value FROM json_each(@statuses)))
  AND (@test_types IS NULL OR r.test_type IN (SELECT value FROM json_each(@test_types)))
  AND (@created_from IS NULL OR r.created_at >= @created_from)
  AND r.created_at <= @cursor_created_at AND (r.created_at < @cursor_created_at OR r.id < @cursor_id)
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: SearchTestResults :many
-- Results whose output or error message match an FTS5 query, best first (by bm25, negated so
-- that higher is better; ties newest first), filtered like the listings; one page, `skip` rows
-- in. The page is ranked on ids, times and scores alone, then its rows are read: sorting every
-- match's whole row, output included, would cost more than finding them. Runs off the event
-- loop: FTS5 ranks every match by bm25 in steps that cannot be interrupted, long for a query
-- of many terms.
-- runs: long
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
    SELECT m.id AS id, -bm25(test_results_fts) AS score
    FROM test_results_fts(@match)
    JOIN test_results AS m ON m.id = test_results_fts.rowid
    WHERE (@statuses IS NULL OR m.status IN (SELECT value FROM json_each(@statuses)))
      AND (@test_types IS NULL OR m.test_type IN (SELECT value FROM json_each(@test_types)))
      AND (@created_from IS NULL OR m.created_at >= @created_from)
      AND (@created_until IS NULL OR m.created_at < @created_until)
      AND NOT EXISTS (
          SELECT 1 FROM json_each(@metadata) AS wanted
          WHERE NOT EXISTS (
              SELECT 1 FROM json_each(m.metadata) AS have
              WHERE have.key = wanted.key
                AND (have.type = wanted.type
                     OR (have.type IN ('integer', 'real') AND wanted.type IN ('integer', 'real')))
                AND have.atom IS wanted.atom
          )
      )
    ORDER BY score DESC, m.created_at DESC, m.id DESC
    LIMIT @page_size OFFSET @skip
) AS hits
JOIN test_results AS r ON r.id = hits.id
ORDER BY hits.score DESC, r.created_at DESC, r.id DESC;

-- name: PlaceRunResults :execrows
-- One imported run's results put in its span, in one statement, once the report's end gives
-- the span (reports.py): a result at @unplaced, or before @first, takes the run's start; one
-- after @last its end; any other is moved by @shift_seconds and @shift_micros (0 to 999,999),
-- exactly, in the stored text's own form (SQLite's date functions keep no microseconds).
-- It runs off the event loop: it rewrites every result of the run, tens of thousands at times.
-- runs: long
-- type: @shift_seconds int
-- type: @shift_micros int
-- type: @run_id !
UPDATE test_results SET created_at = CASE
    WHEN created_at = @unplaced OR created_at < @first THEN @started_at
    WHEN created_at > @last THEN @ended_at
    ELSE strftime(
             '%Y-%m-%dT%H:%M:%S', substr(created_at, 1, 19),
             printf('%+d seconds', @shift_seconds
                    + (CAST(substr(created_at, 21, 6) AS INTEGER) + @shift_micros >= 1000000))
         )
         || printf('.%06d+00:00', (CAST(substr(created_at, 21, 6) AS INTEGER) + @shift_micros) % 1000000)
END
WHERE run_id = @run_id;

-- name: DeleteTestResultsBeforeBatch :execrows
-- Retention, one bounded batch: delete the oldest results created before a cut-off, at most
-- batch_size of them. Each batch is a short statement of its own, so that no writer waits
-- long behind retention: the full-text index must read each deleted row's text again.
-- On SQLite it runs off the event loop: FTS5 may merge index segments inside it, at length.
-- The time is checked again on the row deleted: on PostgreSQL, a row that another writer
-- moved past the cut-off while this one waited for its lock is read again, and kept.
-- runs: long
DELETE FROM test_results
WHERE id IN (
    SELECT expired.id FROM test_results AS expired
    WHERE expired.created_at < @cutoff
    ORDER BY expired.created_at, expired.id
    LIMIT @batch_size
) AND created_at < @cutoff;

-- name: DeleteRunResults :execrows
-- Delete the results of one run: said apart from the run, so that the caches are told of
-- both tables (the foreign key would cascade, unseen by the generator).
DELETE FROM test_results WHERE run_id = @id;
