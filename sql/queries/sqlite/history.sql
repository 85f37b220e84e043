-- name: FlakyTests :many
-- The tests that both passed and failed on one commit since `since`. Only results created at
-- or after `since`, with a test id, a final status (passed, or failing: failed, timeout,
-- error) and a run whose `commit` label is a string are read. Per such test, over all of
-- those results in (created_at, id) order: how many, passed, failing, flips (a result whose
-- outcome differs from the one before it), flip_rate = flips / (results - 1), the commits on
-- which it both passed and failed, and the newest result's time. Ordered by flip rate, highest
-- first, then test id.
--
-- Failures are few, so the query starts from them and reads no more than it must:
-- - fails: the failing results read (the status index), with their run's commit (its run
--   looked up by its key: joined to `commits`, SQLite scanned it per failing result);
-- - pairs, flaky: the tests of which a failing result has a passed result on its commit
--   (found by test_results_run_test_idx, per run of that commit), with how many such commits;
--   asked once per test and commit, not per failing result: a test failing in each of 1,000
--   runs of one commit probed each run per failure (217 s over 100,000 results);
-- - flips: a flip has a failing result on one side, so per failing result of a flaky test the
--   read results just before and just after it are looked up (the test's index), and each
--   one that passed is one flip;
-- - counted: how many results each flaky test has, and its newest, from the test's index
--   alone (test_results_test_created_idx holds status and run_id).
-- Only the results of a run in `commits` are read: not those of a run without a commit label,
-- nor those whose run is gone (deleted by plain SQL without its foreign key).
-- A unary + keeps SQLite's planner on the test's index where the status index would read more.
-- type: test_id str!
-- type: results int!
-- type: passes int!
-- type: failures int!
-- type: flips int!
-- type: flip_rate float!
-- type: flaky_commits int!
-- type: last_seen datetime!
WITH commits AS (
    SELECT u.id, json_extract(u.labels, '$.commit') AS commit_label FROM runs AS u
    WHERE json_type(u.labels, '$.commit') = 'text'
), failing AS (
    SELECT f.id, f.test_id, f.created_at, f.run_id FROM test_results AS f
    WHERE f.status IN ('failed', 'timeout', 'error') AND f.created_at >= @since
      AND f.test_id IS NOT NULL
), fails AS (
    SELECT f.id, f.test_id, f.created_at, json_extract(u.labels, '$.commit') AS commit_label
    FROM failing AS f
    JOIN runs AS u ON u.id = f.run_id
    WHERE json_type(u.labels, '$.commit') = 'text'
), pairs AS (
    SELECT DISTINCT fa.test_id, fa.commit_label FROM fails AS fa
), flaky AS (
    SELECT pr.test_id, COUNT(*) AS flaky_commits
    FROM pairs AS pr
    WHERE EXISTS (
        SELECT 1 FROM commits AS same
        JOIN test_results AS p ON p.run_id = same.id AND p.test_id = pr.test_id
        WHERE same.commit_label = pr.commit_label AND p.status = 'passed'
          AND p.created_at >= @since
    )
    GROUP BY pr.test_id
), flips AS (
    SELECT fa.test_id, COUNT(*) AS failures,
           SUM(CASE WHEN (
               SELECT b.status FROM test_results AS b
               WHERE b.test_id = fa.test_id AND b.created_at >= @since
                 AND b.created_at <= fa.created_at AND (b.created_at < fa.created_at OR b.id < fa.id)
                 AND +b.status IN ('passed', 'failed', 'timeout', 'error')
                 AND +b.run_id IN (SELECT id FROM commits)
               ORDER BY b.created_at DESC, b.id DESC LIMIT 1
           ) = 'passed' THEN 1 ELSE 0 END)
           + SUM(CASE WHEN (
               SELECT a.status FROM test_results AS a
               WHERE a.test_id = fa.test_id
                 AND a.created_at >= fa.created_at AND (a.created_at > fa.created_at OR a.id > fa.id)
                 AND +a.status IN ('passed', 'failed', 'timeout', 'error')
                 AND +a.run_id IN (SELECT id FROM commits)
               ORDER BY a.created_at, a.id LIMIT 1
           ) = 'passed' THEN 1 ELSE 0 END) AS flips
    FROM fails AS fa
    WHERE fa.test_id IN (SELECT test_id FROM flaky)
    GROUP BY fa.test_id
), counted AS (
    SELECT r.test_id, COUNT(*) AS results, MAX(r.created_at) AS last_seen
    FROM test_results AS r
    WHERE r.test_id IN (SELECT test_id FROM flaky) AND r.created_at >= @since
      AND +r.status IN ('passed', 'failed', 'timeout', 'error')
      AND +r.run_id IN (SELECT id FROM commits)
    GROUP BY r.test_id
)
SELECT c.test_id, c.results, c.results - fp.failures AS passes, fp.failures, fp.flips,
       CAST(fp.flips AS DOUBLE PRECISION) / (c.results - 1) AS flip_rate,
       fl.flaky_commits, c.last_seen
FROM counted AS c
JOIN flips AS fp ON fp.test_id = c.test_id
JOIN flaky AS fl ON fl.test_id = c.test_id
ORDER BY flip_rate DESC, c.test_id;

-- name: SlowestTests :many
-- The tests whose passed results created in [created_from, created_until) have the highest
-- nearest-rank p95 execution time, with their count, p50 and longest time; ties by test id.
-- An unset created_until is null, no bound: none at the end of time passes over a result
-- stored there (PostgreSQL's `infinity`).
-- type: test_id str!
-- type: results int!
-- type: p50 float!
-- type: p95 float!
-- type: max_time float!
-- type: @created_until datetime?
SELECT ranked.test_id, COUNT(*) AS results,
       MAX(CASE WHEN ranked.by_time = (50 * ranked.n + 99) / 100 THEN ranked.execution_time END) AS p50,
       MAX(CASE WHEN ranked.by_time = (95 * ranked.n + 99) / 100 THEN ranked.execution_time END) AS p95,
       MAX(ranked.execution_time) AS max_time
FROM (
    SELECT w.test_id, w.execution_time,
           ROW_NUMBER() OVER (PARTITION BY w.test_id ORDER BY w.execution_time, w.id) AS by_time,
           COUNT(*) OVER (PARTITION BY w.test_id) AS n
    FROM test_results AS w
    WHERE w.created_at >= @created_from
      AND (@created_until IS NULL OR w.created_at < @created_until)
      AND w.test_id IS NOT NULL AND w.status = 'passed'
) AS ranked
GROUP BY ranked.test_id
ORDER BY p95 DESC, ranked.test_id
LIMIT @top;

-- name: NamedArtifacts :many
-- Of the hashes given, the distinct ones that some result names: a sweep keeps these files.
-- Asked under the files' locks, for a batch of them; result_artifacts_sha256_idx finds each.
-- A link whose result is gone names nothing, as in ReferencedArtifacts.
-- type: @sha256s str[]
-- type: sha256 str!
SELECT DISTINCT a.sha256 FROM result_artifacts AS a
WHERE a.sha256 IN (SELECT value FROM json_each(@sha256s))
  AND EXISTS (SELECT 1 FROM test_results AS r WHERE r.id = a.result_id)
ORDER BY a.sha256;
