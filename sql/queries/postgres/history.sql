-- name: FlakyTests :many
-- The tests that both passed and failed on one commit since `since`. Only results created at
-- or after `since`, with a test id, a final status (passed, or failing: failed, timeout,
-- error) and a run whose `commit` label is a string are read. Per such test, over all of
-- those results in (created_at, id) order: how many, passed, failing, flips (a result whose
-- outcome differs from the one before it), flip_rate = flips / (results - 1), the commits on
-- which it both passed and failed, and the newest result's time. Ordered by flip rate, highest
-- first, then test id.
-- type: test_id str!
-- type: results int!
-- type: passes int!
-- type: failures int!
-- type: flips int!
-- type: flip_rate float!
-- type: flaky_commits int!
-- type: last_seen datetime!
WITH considered AS (
    SELECT r.test_id, r.id, r.created_at,
           CASE WHEN r.status = 'passed' THEN 0 ELSE 1 END AS failing,
           u.labels ->> 'commit' AS commit_label
    FROM test_results AS r
    JOIN runs AS u ON u.id = r.run_id
    WHERE r.created_at >= @since AND r.test_id IS NOT NULL
      AND r.status IN ('passed', 'failed', 'timeout', 'error')
      AND jsonb_typeof(u.labels -> 'commit') = 'string'
), flaky AS (
    SELECT test_id, COUNT(*) AS flaky_commits
    FROM (
        SELECT test_id, commit_label FROM considered
        GROUP BY test_id, commit_label
        HAVING MIN(failing) = 0 AND MAX(failing) = 1
    ) AS mixed
    GROUP BY test_id
), stepped AS (
    SELECT c.test_id, c.failing, c.created_at,
           CASE WHEN LAG(c.failing) OVER (PARTITION BY c.test_id ORDER BY c.created_at, c.id) <> c.failing
                THEN 1 ELSE 0 END AS flip
    FROM considered AS c
    WHERE c.test_id IN (SELECT test_id FROM flaky)
)
SELECT s.test_id, COUNT(*) AS results,
       SUM(1 - s.failing) AS passes, SUM(s.failing) AS failures, SUM(s.flip) AS flips,
       CAST(SUM(s.flip) AS double precision) / (COUNT(*) - 1) AS flip_rate,
       MAX(f.flaky_commits) AS flaky_commits,
       MAX(s.created_at) AS last_seen
FROM stepped AS s
JOIN flaky AS f ON f.test_id = s.test_id
GROUP BY s.test_id
ORDER BY flip_rate DESC, s.test_id;
