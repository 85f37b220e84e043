-- name: GetTestResult :one
-- One test result by id.
SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed,
       test_cases_total, error_message, output, created_at, metadata, run_id, test_id
FROM test_results WHERE id = @id;

-- name: ListTestResults :many
-- Results newest first, created from created_from on; one keyset page: rows
-- strictly after the (created_at, id) cursor, which holds a filter's upper end too
-- (`upper_bounds`): a bound of its own, exclusive, passed over rows at the end of time. The time index drives it. Filters on type,
-- status or metadata go through ListTestResultsByType, ...ByStatus or ...ByMetadata, whose
-- SQL differs per engine. An unset bound is the start or the end of time, never NULL, so that
-- PostgreSQL's generic plan still uses the index.
SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed,
       test_cases_total, error_message, output, created_at, metadata, run_id, test_id
FROM test_results
WHERE created_at >= @created_from
  AND created_at <= @cursor_created_at AND (created_at < @cursor_created_at OR id < @cursor_id)
ORDER BY created_at DESC, id DESC
LIMIT @page_size;

-- name: InsertTestResult :execlastid
-- Insert one result and give back its new id.
-- params: typed
INSERT INTO test_results (
    test_type, status, execution_time, memory_usage, test_cases_passed,
    test_cases_total, error_message, output, created_at, metadata, run_id, test_id
) VALUES (
    @test_type, @status, @execution_time, @memory_usage, @test_cases_passed,
    @test_cases_total, @error_message, @output, @created_at, @metadata, @run_id, @test_id
) RETURNING id;

-- name: InsertTestResults :copyfrom
-- Insert many results in one batch.
INSERT INTO test_results (
    test_type, status, execution_time, memory_usage, test_cases_passed,
    test_cases_total, error_message, output, created_at, metadata, run_id, test_id
) VALUES (
    @test_type, @status, @execution_time, @memory_usage, @test_cases_passed,
    @test_cases_total, @error_message, @output, @created_at, @metadata, @run_id, @test_id
);

-- name: UpdateTestResult :execrows
-- Overwrite every field of an existing result.
UPDATE test_results SET
    test_type = @test_type, status = @status, execution_time = @execution_time,
    memory_usage = @memory_usage, test_cases_passed = @test_cases_passed,
    test_cases_total = @test_cases_total, error_message = @error_message,
    output = @output, created_at = @created_at, metadata = @metadata,
    run_id = @run_id, test_id = @test_id
WHERE id = @id;

-- name: DeleteTestResult :execrows
-- Delete one result by id.
DELETE FROM test_results WHERE id = @id;

-- name: FirstTestResultBefore :one
-- Retention's last look: the oldest result created before a cut-off, if any is left. On
-- PostgreSQL a batch deletes none of the rows it picked that another writer deleted while it
-- waited for their locks, though older ones may be left.
SELECT id FROM test_results
WHERE created_at < @cutoff
ORDER BY created_at, id
LIMIT 1;

-- name: TestResultStats :many
-- Per test type and status: how many results, their total and their longest execution time.
SELECT test_type, status,
       COUNT(*) AS result_count,
       CAST(SUM(execution_time) AS DOUBLE PRECISION) AS total_time,
       CAST(MAX(execution_time) AS DOUBLE PRECISION) AS max_time
FROM test_results
GROUP BY test_type, status
ORDER BY test_type, status;
