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
WITH marked AS (
    SELECT r.test_id, r.created_at,
           CASE WHEN r.status = 'passed' THEN 0 ELSE 1 END AS failing,
           MIN(CASE WHEN r.status = 'passed' THEN 0 ELSE 1 END)
               OVER (PARTITION BY r.test_id, u.labels ->> 'commit') AS commit_low,
           MAX(CASE WHEN r.status = 'passed' THEN 0 ELSE 1 END)
               OVER (PARTITION BY r.test_id, u.labels ->> 'commit') AS commit_high,
           ROW_NUMBER() OVER (PARTITION BY r.test_id, u.labels ->> 'commit' ORDER BY r.id) AS in_commit,
           LAG(CASE WHEN r.status = 'passed' THEN 0 ELSE 1 END)
               OVER (PARTITION BY r.test_id ORDER BY r.created_at, r.id) AS previous
    FROM test_results AS r
    JOIN runs AS u ON u.id = r.run_id
    WHERE r.created_at >= @since AND r.test_id IS NOT NULL
      AND r.status IN ('passed', 'failed', 'timeout', 'error')
      AND jsonb_typeof(u.labels -> 'commit') = 'string'
)
SELECT test_id, COUNT(*) AS results,
       SUM(1 - failing) AS passes, SUM(failing) AS failures,
       SUM(CASE WHEN previous <> failing THEN 1 ELSE 0 END) AS flips,
       CAST(SUM(CASE WHEN previous <> failing THEN 1 ELSE 0 END) AS double precision) / (COUNT(*) - 1)
           AS flip_rate,
       SUM(CASE WHEN in_commit = 1 AND commit_low = 0 AND commit_high = 1 THEN 1 ELSE 0 END)
           AS flaky_commits,
       MAX(created_at) AS last_seen
FROM marked
GROUP BY test_id
HAVING SUM(CASE WHEN in_commit = 1 AND commit_low = 0 AND commit_high = 1 THEN 1 ELSE 0 END) > 0
ORDER BY flip_rate DESC, test_id;
