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
-- - fails: the failing results read (the status index), with their run's commit;
-- - pairs, flaky: the tests of which a failing result has a passed result on its commit
--   (found by test_results_run_test_idx, per run of that commit), with how many such commits;
--   asked once per test and commit, not per failing result: a test failing in each of 1,000
--   runs of one commit probed each run per failure (217 s over 100,000 results);
-- - outcomes, counted: each flaky test's results, read once (the test's index, which holds
--   status and run_id), in order, each beside the outcome before it; a flip is a pair that
--   differs. Looking up a failing result's neighbours one by one, as SQLite does, was planned
--   here as a read and sort of every earlier result of the test per failing result: 16 s
--   over 1,000 runs of 100 tests, analysed or not, where one ordered read takes 0.7 s.
-- Each flaky test's count of commits goes along with its results: joined to `counted` at the
-- end, two CTEs the planner takes for a row or two each, it was a nested loop over both, 27 s
-- for 25,000 flaky tests on tables not yet analysed (0.4 s once they were).
-- Only the results of a run in `commits` are read: not those of a run without a commit label,
-- nor those whose run is gone (deleted by plain SQL without its foreign key).
-- Each part is MATERIALIZED: the planner cannot see how few results fail, and would otherwise
-- read every run's results. `(run_id IN (...)) IS TRUE` keeps each look-up in `commits` one
-- hashed set, made once: a bare IN became a join that scanned `commits` per result (flaky_tests
-- took 838 ms instead of 190 ms over 300,000 results).
-- type: test_id str!
-- type: results int!
-- type: passes int!
-- type: failures int!
-- type: flips int!
-- type: flip_rate float!
-- type: flaky_commits int!
-- type: last_seen datetime!
WITH commits AS (
    SELECT u.id, u.labels ->> 'commit' AS commit_label FROM runs AS u
    WHERE jsonb_typeof(u.labels -> 'commit') = 'string'
), failing AS MATERIALIZED (
    SELECT f.id, f.test_id, f.created_at, f.run_id FROM test_results AS f
    WHERE f.status IN ('failed', 'timeout', 'error') AND f.created_at >= @since
      AND f.test_id IS NOT NULL
), fails AS MATERIALIZED (
    SELECT f.id, f.test_id, f.created_at, c.commit_label
    FROM failing AS f
    JOIN commits AS c ON c.id = f.run_id
), pairs AS MATERIALIZED (
    SELECT DISTINCT fa.test_id, fa.commit_label FROM fails AS fa
), flaky AS MATERIALIZED (
    SELECT pr.test_id, COUNT(*) AS flaky_commits
    FROM pairs AS pr
    WHERE EXISTS (
        SELECT 1 FROM commits AS same
        JOIN test_results AS p ON p.run_id = same.id AND p.test_id = pr.test_id
        WHERE same.commit_label = pr.commit_label AND p.status = 'passed'
          AND p.created_at >= @since
    )
    GROUP BY pr.test_id
), outcomes AS MATERIALIZED (
    SELECT r.test_id, fl.flaky_commits, r.created_at,
           CASE WHEN r.status = 'passed' THEN 0 ELSE 1 END AS failed,
           LAG(CASE WHEN r.status = 'passed' THEN 0 ELSE 1 END)
               OVER (PARTITION BY r.test_id ORDER BY r.created_at, r.id) AS failed_before
    FROM flaky AS fl
    JOIN test_results AS r ON r.test_id = fl.test_id
    WHERE r.created_at >= @since AND r.status IN ('passed', 'failed', 'timeout', 'error')
      AND (r.run_id IN (SELECT id FROM commits)) IS TRUE
), counted AS MATERIALIZED (
    SELECT o.test_id, COUNT(*) AS results, SUM(o.failed) AS failures,
           COUNT(*) FILTER (WHERE o.failed <> o.failed_before) AS flips,
           MAX(o.flaky_commits) AS flaky_commits, MAX(o.created_at) AS last_seen
    FROM outcomes AS o
    GROUP BY o.test_id
)
SELECT c.test_id, c.results, c.results - c.failures AS passes, c.failures, c.flips,
       CAST(c.flips AS DOUBLE PRECISION) / (c.results - 1) AS flip_rate,
       c.flaky_commits, c.last_seen
FROM counted AS c
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
      AND (sqlc.narg(created_until)::timestamptz IS NULL OR w.created_at < sqlc.narg(created_until))
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
WHERE a.sha256 = ANY(@sha256s::text[])
  AND EXISTS (SELECT 1 FROM test_results AS r WHERE r.id = a.result_id)
ORDER BY a.sha256;
