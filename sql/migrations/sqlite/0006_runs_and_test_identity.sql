-- Run history: which invocation of the tool produced a result, and which test it was.
--
-- - runs: one invocation, with when it started and ended, and labels (a JSON object) such as
--   {"commit": "9f2c1e0", "branch": "main", "host": "ci-3"}.
-- - test_results.run_id: the run a result belongs to, or NULL for a result saved outside any
--   run (every row written before this migration). Deleting a run deletes its results.
-- - test_results.test_id: what was tested, as the caller names it ("tests/test_io.py::test_read",
--   "solutions/a.cpp#stress"), or NULL. A run holds each test id at most once.
-- - status may be 'skipped': a test that was not run is neither passed nor failed.
--
-- SQLite cannot change a CHECK constraint in place, so test_results is rebuilt (SQLite's
-- recipe: foreign keys are off while a migration runs): a new table with the new columns and
-- check, every row copied with its id, the AUTOINCREMENT counter carried over so that no id is
-- used twice, the old table dropped, the new one renamed, and its indexes and the search
-- triggers of 0005 made again as they were. The search index is keyed by id, so it stays valid.
--
-- Both columns are nullable, so every existing row stays valid as it is. The indexes serve the
-- history questions: a run's results by test id (compare_runs), one test's results newest
-- first (its history and duration figures), and runs newest first (list_runs).

CREATE TABLE runs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TIMESTAMP_TEXT NOT NULL,
    ended_at   TIMESTAMP_TEXT,
    labels     JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels) AND json_type(labels) = 'object')
);

CREATE INDEX runs_started_idx ON runs (started_at DESC, id DESC);

CREATE TABLE test_results_rebuilt (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    test_type         TEXT NOT NULL CHECK (test_type IN ('stress', 'tle', 'unit', 'integration')),
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'passed', 'failed', 'timeout', 'error', 'skipped')),
    execution_time    REAL NOT NULL DEFAULT 0 CHECK (execution_time >= 0),
    memory_usage      INTEGER NOT NULL DEFAULT 0 CHECK (memory_usage >= 0),
    test_cases_passed INTEGER NOT NULL DEFAULT 0 CHECK (test_cases_passed >= 0),
    test_cases_total  INTEGER NOT NULL DEFAULT 0 CHECK (test_cases_total >= 0),
    error_message     TEXT,
    output            TEXT,
    created_at        TIMESTAMP_TEXT NOT NULL,
    metadata          JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    run_id            INTEGER REFERENCES runs (id) ON DELETE CASCADE,
    test_id           TEXT CHECK (test_id <> ''),
    CHECK (test_cases_passed <= test_cases_total)
);

INSERT INTO test_results_rebuilt (
    id, test_type, status, execution_time, memory_usage, test_cases_passed, test_cases_total,
    error_message, output, created_at, metadata
)
SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed, test_cases_total,
       error_message, output, created_at, metadata
FROM test_results;

DELETE FROM sqlite_sequence WHERE name = 'test_results_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'test_results_rebuilt', seq FROM sqlite_sequence WHERE name = 'test_results';

DROP TABLE test_results;
ALTER TABLE test_results_rebuilt RENAME TO test_results;

CREATE INDEX test_results_created_idx ON test_results (created_at DESC, id DESC);
CREATE INDEX test_results_type_created_idx ON test_results (test_type, created_at DESC, id DESC);
CREATE INDEX test_results_status_created_idx ON test_results (status, created_at DESC, id DESC);

-- The search triggers, as 0005 made them.

CREATE TRIGGER test_results_fts_before_insert BEFORE INSERT ON test_results BEGIN
    DELETE FROM test_results_fts_replaced WHERE id = new.id;
    INSERT INTO test_results_fts_replaced (id, output, error_message)
    SELECT id, replace(CASE WHEN length(output) > 16000
            THEN rtrim(substr(output, 1, 16001), replace(replace(replace(replace(
                substr(output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(output, '') END, char(304), 'i'),
        replace(CASE WHEN length(error_message) > 16000
            THEN rtrim(substr(error_message, 1, 16001), replace(replace(replace(replace(
                substr(error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(error_message, '') END, char(304), 'i')
    FROM test_results WHERE id = new.id;
END;

CREATE TRIGGER test_results_fts_after_insert AFTER INSERT ON test_results BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    SELECT 'delete', id, output, error_message FROM test_results_fts_replaced WHERE id = new.id;
    DELETE FROM test_results_fts_replaced WHERE id = new.id;
    INSERT INTO test_results_fts (rowid, output, error_message)
    VALUES (
        new.id,
        replace(CASE WHEN length(new.output) > 16000
            THEN rtrim(substr(new.output, 1, 16001), replace(replace(replace(replace(
                substr(new.output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(new.output, '') END, char(304), 'i'),
        replace(CASE WHEN length(new.error_message) > 16000
            THEN rtrim(substr(new.error_message, 1, 16001), replace(replace(replace(replace(
                substr(new.error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(new.error_message, '') END, char(304), 'i')
    );
END;

-- A contentless table forgets a row by being given the text it indexed.
CREATE TRIGGER test_results_fts_after_delete AFTER DELETE ON test_results BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    VALUES (
        'delete',
        old.id,
        replace(CASE WHEN length(old.output) > 16000
            THEN rtrim(substr(old.output, 1, 16001), replace(replace(replace(replace(
                substr(old.output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(old.output, '') END, char(304), 'i'),
        replace(CASE WHEN length(old.error_message) > 16000
            THEN rtrim(substr(old.error_message, 1, 16001), replace(replace(replace(replace(
                substr(old.error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(old.error_message, '') END, char(304), 'i')
    );
    DELETE FROM test_results_fts_replaced WHERE id = old.id;
END;

CREATE TRIGGER test_results_fts_before_update BEFORE UPDATE OF id ON test_results
WHEN old.id IS NOT new.id
BEGIN
    DELETE FROM test_results_fts_replaced WHERE id = new.id;
    INSERT INTO test_results_fts_replaced (id, output, error_message)
    SELECT id, replace(CASE WHEN length(output) > 16000
            THEN rtrim(substr(output, 1, 16001), replace(replace(replace(replace(
                substr(output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(output, '') END, char(304), 'i'),
        replace(CASE WHEN length(error_message) > 16000
            THEN rtrim(substr(error_message, 1, 16001), replace(replace(replace(replace(
                substr(error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(error_message, '') END, char(304), 'i')
    FROM test_results WHERE id = new.id;
END;

CREATE TRIGGER test_results_fts_after_update AFTER UPDATE OF id, output, error_message ON test_results
WHEN old.id IS NOT new.id
    OR old.output IS NOT new.output
    OR old.error_message IS NOT new.error_message
BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    VALUES (
        'delete',
        old.id,
        replace(CASE WHEN length(old.output) > 16000
            THEN rtrim(substr(old.output, 1, 16001), replace(replace(replace(replace(
                substr(old.output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(old.output, '') END, char(304), 'i'),
        replace(CASE WHEN length(old.error_message) > 16000
            THEN rtrim(substr(old.error_message, 1, 16001), replace(replace(replace(replace(
                substr(old.error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(old.error_message, '') END, char(304), 'i')
    );
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    SELECT 'delete', id, output, error_message FROM test_results_fts_replaced
    WHERE id = new.id AND old.id IS NOT new.id;
    DELETE FROM test_results_fts_replaced WHERE id = new.id AND old.id IS NOT new.id;
    INSERT INTO test_results_fts (rowid, output, error_message)
    VALUES (
        new.id,
        replace(CASE WHEN length(new.output) > 16000
            THEN rtrim(substr(new.output, 1, 16001), replace(replace(replace(replace(
                substr(new.output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(new.output, '') END, char(304), 'i'),
        replace(CASE WHEN length(new.error_message) > 16000
            THEN rtrim(substr(new.error_message, 1, 16001), replace(replace(replace(replace(
                substr(new.error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(new.error_message, '') END, char(304), 'i')
    );
END;


CREATE UNIQUE INDEX test_results_run_test_idx ON test_results (run_id, test_id);
CREATE INDEX test_results_test_created_idx ON test_results (test_id, created_at DESC, id DESC);
