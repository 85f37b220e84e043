-- name: ListTestResultsByType :many
-- Results of any of the given types, newest first, created in [created_from, created_until);
-- one keyset page after the (created_at, id) cursor. The type index drives it.
-- type: @test_types str[]
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata
FROM unnest(@test_types::text[]) AS wanted (test_type)
CROSS JOIN LATERAL (
    SELECT * FROM test_results AS t
    WHERE t.test_type = wanted.test_type
      AND t.created_at >= @created_from AND t.created_at < @created_until
          AND t.created_at <= @cursor_created_at AND (t.created_at < @cursor_created_at OR t.id < @cursor_id)
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT @page_size
) AS r
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: ListTestResultsByStatus :many
-- Results of any of the given statuses (and, when given, types), newest first, created in
-- [created_from, created_until); one keyset page after the (created_at, id) cursor. The status
-- index drives it.
-- type: @statuses str[]
-- type: @test_types str[]?
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata
FROM unnest(@statuses::text[]) AS wanted (status)
CROSS JOIN LATERAL (
    SELECT * FROM test_results AS t
    WHERE t.status = wanted.status
      AND (sqlc.narg(test_types)::text[] IS NULL OR t.test_type = ANY(sqlc.narg(test_types)::text[]))
      AND t.created_at >= @created_from AND t.created_at < @created_until
          AND t.created_at <= @cursor_created_at AND (t.created_at < @cursor_created_at OR t.id < @cursor_id)
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT @page_size
) AS r
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: ListTestResultsByMetadata :many
-- Results whose metadata holds every given key with an equal scalar value (and, when given,
-- of the given statuses and types), newest first, created in [created_from, created_until);
-- one keyset page after the (created_at, id) cursor. The metadata GIN index drives it.
-- type: @metadata json
-- type: @statuses str[]?
-- type: @test_types str[]?
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata
FROM test_results AS r
WHERE r.metadata @> @metadata
  AND (sqlc.narg(statuses)::text[] IS NULL OR r.status = ANY(sqlc.narg(statuses)::text[]))
  AND (sqlc.narg(test_types)::text[] IS NULL OR r.test_type = ANY(sqlc.narg(test_types)::text[]))
  AND r.created_at >= @created_from AND r.created_at < @created_until
  AND r.created_at <= @cursor_created_at AND (r.created_at < @cursor_created_at OR r.id < @cursor_id)
ORDER BY r.created_at DESC, r.id DESC
LIMIT @page_size;

-- name: SearchTestResults :many
-- Results whose output or error message match a tsquery, best first (by ts_rank_cd), filtered
-- like the listings; one page, `skip` rows in.
-- type: @match str
-- type: @statuses str[]?
-- type: @test_types str[]?
-- type: @metadata json?
-- type: score float!
SELECT r.id, r.test_type, r.status, r.execution_time, r.memory_usage, r.test_cases_passed,
       r.test_cases_total, r.error_message, r.output, r.created_at, r.metadata,
       ts_rank_cd(r.search_vector, to_tsquery('simple', @match), 1)::double precision AS score
FROM test_results AS r
WHERE r.search_vector @@ to_tsquery('simple', @match)
  AND (sqlc.narg(statuses)::text[] IS NULL OR r.status = ANY(sqlc.narg(statuses)::text[]))
  AND (sqlc.narg(test_types)::text[] IS NULL OR r.test_type = ANY(sqlc.narg(test_types)::text[]))
  AND r.created_at >= @created_from AND r.created_at < @created_until
  AND (sqlc.narg(metadata)::jsonb IS NULL OR r.metadata @> sqlc.narg(metadata)::jsonb)
ORDER BY score DESC, r.id DESC
LIMIT @page_size OFFSET @skip;
