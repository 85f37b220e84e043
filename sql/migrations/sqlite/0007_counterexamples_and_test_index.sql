-- Counterexamples: the failing input of a stress or time-limit result, kept for replay, with
-- the output expected and the output the program gave.
--
-- - result_artifacts links a result to the content of each of its files by SHA-256: at most
--   one per role ('input', 'expected', 'actual'). The content itself lives in the storage
--   root's `.cache/counterexamples/` folder, one file per hash, so that an input that failed
--   many times is stored once. Deleting a result deletes its links; retention then removes
--   the files that no link names any more (persistence.counterexamples).
-- - result_artifacts_sha256_idx finds whether any result still names a file.
--
-- A new table: every existing row stays as it is.
--
-- test_results_test_created_idx, one test's results newest first, is made again holding each
-- result's status, run and time as well: flaky_tests counts the results of each flaky test, and
-- duration_figures reads a test's times, from the index alone, without a read of each row.

CREATE TABLE result_artifacts (
    result_id INTEGER NOT NULL REFERENCES test_results (id) ON DELETE CASCADE,
    role      TEXT NOT NULL CHECK (role IN ('input', 'expected', 'actual')),
    sha256    TEXT NOT NULL CHECK (length(sha256) = 64 AND NOT sha256 GLOB '*[^0-9a-f]*'),
    size      INTEGER NOT NULL CHECK (size >= 0),
    PRIMARY KEY (result_id, role)
);

CREATE INDEX result_artifacts_sha256_idx ON result_artifacts (sha256);

DROP INDEX test_results_test_created_idx;
CREATE INDEX test_results_test_created_idx
    ON test_results (test_id, created_at DESC, id DESC, status, run_id, execution_time);
