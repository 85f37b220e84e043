-- name: GetTestResult :one
-- One test result by id.
SELECT * FROM test_results WHERE id = @id;

-- name: ListTestResults :many
-- Results newest first, optionally filtered by type, status and a creation time range;
-- one keyset page: rows strictly after the (created_at, id) cursor.
SELECT * FROM test_results
WHERE test_type = coalesce(sqlc.narg(test_type), test_type)
  AND status = coalesce(sqlc.narg(status), status)
  AND created_at >= coalesce(sqlc.narg(created_from), created_at)
  AND (created_at < sqlc.narg(created_until)) IS NOT FALSE
  AND (created_at < @cursor_created_at OR (created_at = @cursor_created_at AND id < @cursor_id))
ORDER BY created_at DESC, id DESC
LIMIT @page_size;

-- name: InsertTestResult :execlastid
-- Insert one result and give back its new id.
-- params: typed
INSERT INTO test_results (
    test_type, status, execution_time, memory_usage, test_cases_passed,
    test_cases_total, error_message, output, created_at, metadata
) VALUES (
    @test_type, @status, @execution_time, @memory_usage, @test_cases_passed,
    @test_cases_total, @error_message, @output, @created_at, @metadata
) RETURNING id;

-- name: InsertTestResults :copyfrom
-- Insert many results in one batch.
INSERT INTO test_results (
    test_type, status, execution_time, memory_usage, test_cases_passed,
    test_cases_total, error_message, output, created_at, metadata
) VALUES (
    @test_type, @status, @execution_time, @memory_usage, @test_cases_passed,
    @test_cases_total, @error_message, @output, @created_at, @metadata
);

-- name: UpdateTestResult :execrows
-- Overwrite every field of an existing result.
UPDATE test_results SET
    test_type = @test_type, status = @status, execution_time = @execution_time,
    memory_usage = @memory_usage, test_cases_passed = @test_cases_passed,
    test_cases_total = @test_cases_total, error_message = @error_message,
    output = @output, created_at = @created_at, metadata = @metadata
WHERE id = @id;

-- name: DeleteTestResult :execrows
-- Delete one result by id.
DELETE FROM test_results WHERE id = @id;

-- name: DeleteTestResultsBefore :execrows
-- Retention: delete every result created before a cut-off.
DELETE FROM test_results WHERE created_at < @cutoff;

-- name: TestResultStats :many
-- Per test type and status: how many results, their total and their longest execution time.
SELECT test_type, status,
       COUNT(*) AS result_count,
       CAST(SUM(execution_time) AS DOUBLE PRECISION) AS total_time,
       CAST(MAX(execution_time) AS DOUBLE PRECISION) AS max_time
FROM test_results
GROUP BY test_type, status
ORDER BY test_type, status;
