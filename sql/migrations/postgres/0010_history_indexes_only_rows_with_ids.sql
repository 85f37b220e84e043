-- The history indexes hold only the rows that they can find.
--
-- 0006 and 0007 indexed every result by its run and test id, including the rows that have
-- neither: every result saved outside a run, and every result of the seed's shape. Each such
-- row cost each insert two more index entries that no query could reach, since every query of
-- these indexes names a run id or a test id (`run_id = $1`, `test_id = $1`, or a join on
-- them), and a row where that column is NULL never matches.
--
-- Each index now keeps the rows where its leading column is set. Uniqueness is the same: two
-- rows with a NULL run id never conflicted. The queries are unchanged; `=` is strict, so a
-- condition on the column implies that it is not NULL, also under a generic plan, and the
-- planner still picks these indexes (tests/test_history_plans.py reads the plans).

DROP INDEX test_results_run_test_idx;
CREATE UNIQUE INDEX test_results_run_test_idx ON test_results (run_id, test_id)
    WHERE run_id IS NOT NULL;

DROP INDEX test_results_test_created_idx;
CREATE INDEX test_results_test_created_idx
    ON test_results (test_id, created_at DESC, id DESC) INCLUDE (status, run_id, execution_time)
    WHERE test_id IS NOT NULL;
