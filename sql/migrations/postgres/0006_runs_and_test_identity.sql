-- Run history: which invocation of the tool produced a result, and which test it was.
--
-- - runs: one invocation, with when it started and ended, and labels (a JSON object) such as
--   {"commit": "9f2c1e0", "branch": "main", "host": "ci-3"}.
-- - test_results.run_id: the run a result belongs to, or NULL for a result saved outside any
--   run (every row written before this migration). Deleting a run deletes its results.
-- - test_results.test_id: what was tested, as the caller names it ("tests/test_io.py::test_read",
--   "solutions/a.cpp#stress"), or NULL. A run holds each test id at most once. Test ids sort
--   by code point, as on SQLite.
-- - status may be 'skipped': a test that was not run is neither passed nor failed.
--
-- Both columns are nullable, so every existing row stays valid as it is and adding them
-- rewrites no row. The indexes serve the history questions: a run's results by test id
-- (compare_runs), one test's results newest first (its history and duration figures), and
-- runs newest first (list_runs).

CREATE TABLE runs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    labels     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object')
);

CREATE INDEX runs_started_idx ON runs (started_at DESC, id DESC);

ALTER TABLE test_results
    ADD COLUMN run_id bigint REFERENCES runs (id) ON DELETE CASCADE,
    ADD COLUMN test_id text COLLATE "C" CHECK (test_id <> ''),
    DROP CONSTRAINT test_results_status_check,
    ADD CONSTRAINT test_results_status_check
        CHECK (status IN ('pending', 'running', 'passed', 'failed', 'timeout', 'error', 'skipped'));

CREATE UNIQUE INDEX test_results_run_test_idx ON test_results (run_id, test_id);
CREATE INDEX test_results_test_created_idx ON test_results (test_id, created_at DESC, id DESC);
