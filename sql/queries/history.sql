-- name: CompareRuns :many
-- What changed from run `base` to run `head`, per test id; tests that did not change are left
-- out. A result is failing when its status is failed, timeout or error. Each test gets one
-- change, the first that applies:
--   new_failure    failing in head, and not failing in base or absent from it;
--   added          in head only, and not failing;
--   removed        in base only;
--   fixed          failing in base, passed in head;
--   still_failing  failing in both;
--   slower         passed in both, head's time > base's time * slower_ratio and
--                  head's time - base's time > slower_floor.
-- Ordered by change, then test id (by code point). test_results_run_test_idx reads each run.
-- A base time above `slower_cap` (half the largest float / slower_ratio) is never exceeded:
-- its product, which PostgreSQL refuses once it overflows, is not taken. Nor is the product of
-- a base time below `slower_least` (the least whose product is above zero), which rounds to
-- zero and which PostgreSQL refuses as an underflow: the head time is compared with zero.
-- type: @base int!
-- type: @head int!
-- type: @slower_ratio float
-- type: @slower_cap float
-- type: @slower_least float
-- type: @slower_floor float
-- type: change str!
-- type: test_id str!
-- type: base_status str?
-- type: head_status str?
-- type: base_time float?
-- type: head_time float?
WITH both_runs AS (
    SELECT h.test_id AS test_id, b.status AS base_status, h.status AS head_status,
           b.execution_time AS base_time, h.execution_time AS head_time
    FROM test_results AS h
    LEFT JOIN test_results AS b ON b.run_id = @base AND b.test_id = h.test_id
    WHERE h.run_id = @head AND h.test_id IS NOT NULL
    UNION ALL
    SELECT b.test_id, b.status, NULL, b.execution_time, NULL
    FROM test_results AS b
    WHERE b.run_id = @base AND b.test_id IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM test_results AS h WHERE h.run_id = @head AND h.test_id = b.test_id
      )
), pairs AS (
    SELECT test_id, base_status, head_status, base_time, head_time,
           CASE
               WHEN head_status IN ('failed', 'timeout', 'error')
                    AND (base_status IS NULL OR base_status NOT IN ('failed', 'timeout', 'error'))
                   THEN 'new_failure'
               WHEN base_status IS NULL THEN 'added'
               WHEN head_status IS NULL THEN 'removed'
               WHEN base_status IN ('failed', 'timeout', 'error') AND head_status = 'passed'
                   THEN 'fixed'
               WHEN base_status IN ('failed', 'timeout', 'error')
                    AND head_status IN ('failed', 'timeout', 'error')
                   THEN 'still_failing'
               WHEN base_status = 'passed' AND head_status = 'passed'
                    AND CASE
                            WHEN base_time > CAST(@slower_cap AS DOUBLE PRECISION) THEN FALSE
                            WHEN base_time < CAST(@slower_least AS DOUBLE PRECISION)
                                THEN head_time > 0
                            ELSE head_time > base_time * CAST(@slower_ratio AS DOUBLE PRECISION)
                        END
                    AND head_time - base_time > CAST(@slower_floor AS DOUBLE PRECISION)
                   THEN 'slower'
               ELSE 'unchanged'
           END AS change
    FROM both_runs
)
SELECT test_id, change, base_status, head_status, base_time, head_time
FROM pairs
WHERE change <> 'unchanged'
ORDER BY change, test_id;

-- name: ListTestHistory :many
-- One test's results newest first; one keyset page after the (created_at, id) cursor.
-- test_results_test_created_idx drives it.
-- type: @test_id str!
SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed,
       test_cases_total, error_message, output, created_at, metadata, run_id, test_id
FROM test_results
WHERE test_id = @test_id
  AND created_at <= @cursor_created_at AND (created_at < @cursor_created_at OR id < @cursor_id)
ORDER BY created_at DESC, id DESC
LIMIT @page_size;

-- name: TestDurations :one
-- One test's execution times over its last `last_results` passed results: how many, the
-- nearest-rank p50 and p95 (the value at rank ceil(p * n / 100) of the times sorted
-- ascending, ties by id), the longest, and the newest one's. test_results_test_created_idx
-- finds them.
-- type: @test_id str!
-- type: results int!
-- type: p50 float?
-- type: p95 float?
-- type: max_time float?
-- type: latest float?
SELECT COUNT(*) AS results,
       MAX(CASE WHEN ranked.by_time = (50 * ranked.n + 99) / 100 THEN ranked.execution_time END) AS p50,
       MAX(CASE WHEN ranked.by_time = (95 * ranked.n + 99) / 100 THEN ranked.execution_time END) AS p95,
       MAX(ranked.execution_time) AS max_time,
       MAX(CASE WHEN ranked.by_age = 1 THEN ranked.execution_time END) AS latest
FROM (
    SELECT recent.execution_time,
           ROW_NUMBER() OVER (ORDER BY recent.execution_time, recent.id) AS by_time,
           ROW_NUMBER() OVER (ORDER BY recent.created_at DESC, recent.id DESC) AS by_age,
           COUNT(*) OVER () AS n
    FROM (
        SELECT id, execution_time, created_at FROM test_results
        WHERE test_id = @test_id AND status = 'passed'
        ORDER BY created_at DESC, id DESC
        LIMIT @last_results
    ) AS recent
) AS ranked;

-- name: ListRunResults :many
-- One run's results in the order they were stored (by id), from the id `from_id` on; one page.
-- From, not after: the first page starts at the smallest id, which plain SQL may write.
-- test_results_run_test_idx finds the run's rows.
-- type: @run_id int!
SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed,
       test_cases_total, error_message, output, created_at, metadata, run_id, test_id
FROM test_results
WHERE run_id = @run_id AND id >= @from_id
ORDER BY id
LIMIT @page_size;

-- name: InsertResultArtifacts :copyfrom
-- Link results to the files they kept, by role (input, expected, actual) and SHA-256.
INSERT INTO result_artifacts (result_id, role, sha256, size)
VALUES (@result_id, @role, @sha256, @size);

-- name: Counterexamples :many
-- The distinct inputs on which test `test_id` failed (failed, timeout or error), newest failure
-- first, at most `top`: per input, how many failing results kept it, when it first and last
-- failed, and the newest such result with the expected and actual outputs it kept.
-- test_results_test_created_idx finds the test's results, the links' primary key their files.
-- type: @test_id str!
-- type: input_sha256 str!
-- type: input_size int!
-- type: result_id int!
-- type: status str!
-- type: failed_at datetime!
-- type: first_failed_at datetime!
-- type: failures int!
-- type: expected_sha256 str?
-- type: actual_sha256 str?
WITH failing AS (
    SELECT r.id, r.status, r.created_at, a.sha256, a.size,
           ROW_NUMBER() OVER (PARTITION BY a.sha256 ORDER BY r.created_at DESC, r.id DESC) AS newest,
           COUNT(*) OVER (PARTITION BY a.sha256) AS failures,
           MIN(r.created_at) OVER (PARTITION BY a.sha256) AS first_failed_at
    FROM test_results AS r
    JOIN result_artifacts AS a ON a.result_id = r.id AND a.role = 'input'
    WHERE r.test_id = @test_id AND r.status IN ('failed', 'timeout', 'error')
)
SELECT f.sha256 AS input_sha256, f.size AS input_size, f.id AS result_id, f.status,
       f.created_at AS failed_at, f.first_failed_at, f.failures,
       e.sha256 AS expected_sha256, x.sha256 AS actual_sha256
FROM failing AS f
LEFT JOIN result_artifacts AS e ON e.result_id = f.id AND e.role = 'expected'
LEFT JOIN result_artifacts AS x ON x.result_id = f.id AND x.role = 'actual'
WHERE f.newest = 1
ORDER BY f.created_at DESC, f.id DESC
LIMIT @top;

-- name: ReferencedArtifacts :many
-- The distinct hashes from `low` (inclusive) to `high` (exclusive) that some result still
-- names: retention keeps these files. result_artifacts_sha256_idx reads the range. A link
-- whose result is gone (deleted by plain SQL with foreign keys off) names nothing: its file
-- was kept for good, though no result, nor `counterexamples`, showed it.
-- type: sha256 str!
SELECT DISTINCT a.sha256 FROM result_artifacts AS a
WHERE a.sha256 >= @low AND a.sha256 < @high
  AND EXISTS (SELECT 1 FROM test_results AS r WHERE r.id = a.result_id)
ORDER BY a.sha256;
