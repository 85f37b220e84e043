-- Times in the history tables are stored in one form, UTC to the microsecond, which sorts in
-- time order.
--
-- On SQLite a time is text, compared as text: every window, listing and retention cut-off
-- compares the stored text with the bound's. The package writes one fixed-width form,
-- `2026-05-01T00:00:00.000000+00:00`, but the columns took any text: a time written by plain
-- SQL with another offset (`2026-04-30T23:00:00-02:00`, an hour after 00:00 UTC) sorted by its
-- digits, so `delete_results_before` deleted it as older than a cut-off it came after, and the
-- windows of `slowest_tests` and `flaky_tests` left it out where PostgreSQL, which stores an
-- instant, counted it. A `Z` or a space for the `T` sorted wrongly too, and a time without
-- its fraction fell out of a window that starts at its very instant.
--
-- `test_results.created_at`, `runs.started_at` and `runs.ended_at` now CHECK that form; the
-- CHECK costs an insert nothing measurable. SQLite cannot add a CHECK in place, so both tables
-- are rebuilt by the recipe of 0006 (ids, AUTOINCREMENT counters, indexes and triggers as they
-- were; the contentless search index is keyed by id and stays valid). A stored time in another
-- form that has its offset is written in the form, in UTC, its fraction's digits kept; one
-- without an offset, or that SQLite's date functions cannot read, names no instant and stops
-- the migration on the CHECK. Rebuilding 200,000 results took 2.5 s. PostgreSQL's
-- `timestamptz` holds an instant already, and its 0013 changes nothing.

-- Each stored time in another form, once, with its UTC form when it can be read.
CREATE TABLE time_forms (stored TEXT PRIMARY KEY, zone TEXT, whole TEXT, fraction TEXT, utc TEXT);

INSERT OR IGNORE INTO time_forms (stored)
SELECT created_at FROM test_results
WHERE typeof(created_at) = 'text' AND created_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00';

INSERT OR IGNORE INTO time_forms (stored)
SELECT started_at FROM runs
WHERE typeof(started_at) = 'text' AND started_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00';

INSERT OR IGNORE INTO time_forms (stored)
SELECT ended_at FROM runs
WHERE typeof(ended_at) = 'text' AND ended_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00';

-- Only a time with its offset (`Z`, or +HH:MM / -HH:MM) names an instant.
UPDATE time_forms SET zone = CASE
    WHEN stored GLOB '*Z' THEN 'Z'
    WHEN stored GLOB '*[-+][0-9][0-9]:[0-9][0-9]' THEN substr(stored, -6)
END;

-- The whole seconds in UTC, and the fraction's digits as written: an offset moves whole
-- minutes, and strftime('%f') would round the fraction to milliseconds.
UPDATE time_forms SET
    whole = strftime('%Y-%m-%dT%H:%M:%S', substr(stored, 1, 19) || zone),
    fraction = CASE WHEN substr(stored, 20, 1) = '.'
                    THEN substr(stored, 21, length(stored) - 20 - length(zone)) ELSE '' END
WHERE zone IS NOT NULL;

UPDATE time_forms SET utc = whole || '.' || substr(fraction || '000000', 1, 6) || '+00:00'
WHERE whole IS NOT NULL AND length(fraction) <= 6 AND fraction NOT GLOB '*[^0-9]*';

CREATE TABLE runs_rebuilt (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TIMESTAMP_TEXT NOT NULL
               CHECK (typeof(started_at) = 'text' AND started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    ended_at   TIMESTAMP_TEXT
               CHECK (ended_at IS NULL OR (typeof(ended_at) = 'text' AND ended_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00')),
    labels     JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels) AND json_type(labels) = 'object')
);

INSERT INTO runs_rebuilt (id, started_at, ended_at, labels)
SELECT id,
       CASE WHEN started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00' THEN started_at
            ELSE coalesce((SELECT f.utc FROM time_forms AS f WHERE f.stored = started_at), started_at) END,
       CASE WHEN ended_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00' THEN ended_at
            ELSE coalesce((SELECT f.utc FROM time_forms AS f WHERE f.stored = ended_at), ended_at) END,
       labels
FROM runs;

DELETE FROM sqlite_sequence WHERE name = 'runs_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'runs_rebuilt', seq FROM sqlite_sequence WHERE name = 'runs';

DROP TABLE runs;
ALTER TABLE runs_rebuilt RENAME TO runs;

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
    created_at        TIMESTAMP_TEXT NOT NULL
                      CHECK (typeof(created_at) = 'text' AND created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    metadata          JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    run_id            INTEGER REFERENCES runs (id) ON DELETE CASCADE,
    test_id           TEXT CHECK (test_id <> ''),
    CHECK (test_cases_passed <= test_cases_total)
);

INSERT INTO test_results_rebuilt (
    id, test_type, status, execution_time, memory_usage, test_cases_passed, test_cases_total,
    error_message, output, created_at, metadata, run_id, test_id
)
SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed, test_cases_total,
       error_message, output,
       CASE WHEN created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00' THEN created_at
            ELSE coalesce((SELECT f.utc FROM time_forms AS f WHERE f.stored = created_at), created_at) END,
       metadata, run_id, test_id
FROM test_results;

DELETE FROM sqlite_sequence WHERE name = 'test_results_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'test_results_rebuilt', seq FROM sqlite_sequence WHERE name = 'test_results';

DROP TABLE test_results;
ALTER TABLE test_results_rebuilt RENAME TO test_results;

DROP TABLE time_forms;

CREATE INDEX test_results_created_idx ON test_results (created_at DESC, id DESC);
CREATE INDEX test_results_type_created_idx ON test_results (test_type, created_at DESC, id DESC);
CREATE INDEX test_results_status_created_idx ON test_results (status, created_at DESC, id DESC);
CREATE UNIQUE INDEX test_results_run_test_idx ON test_results (run_id, test_id)
    WHERE run_id IS NOT NULL;
CREATE INDEX test_results_test_created_idx
    ON test_results (test_id, created_at DESC, id DESC, status, run_id, execution_time)
    WHERE test_id IS NOT NULL;

-- The search triggers, as 0009 left them.

CREATE TRIGGER test_results_fts_before_insert BEFORE INSERT ON test_results
WHEN new.id IS NOT -1 OR EXISTS (SELECT 1 FROM test_results WHERE id = -1)
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
    FROM test_results WHERE id = new.id AND (coalesce(output, '') <> '' OR coalesce(error_message, '') <> '');
END;

CREATE TRIGGER test_results_fts_after_insert AFTER INSERT ON test_results
WHEN (coalesce(new.output, '') <> '' OR coalesce(new.error_message, '') <> '')
    OR EXISTS (SELECT 1 FROM test_results_fts_replaced WHERE id = new.id)
BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    SELECT 'delete', id, output, error_message FROM test_results_fts_replaced WHERE id = new.id;
    DELETE FROM test_results_fts_replaced WHERE id = new.id;
    INSERT INTO test_results_fts (rowid, output, error_message)
    SELECT new.id,
        replace(CASE WHEN length(new.output) > 16000
            THEN rtrim(substr(new.output, 1, 16001), replace(replace(replace(replace(
                substr(new.output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(new.output, '') END, char(304), 'i'),
        replace(CASE WHEN length(new.error_message) > 16000
            THEN rtrim(substr(new.error_message, 1, 16001), replace(replace(replace(replace(
                substr(new.error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(new.error_message, '') END, char(304), 'i')
    WHERE (coalesce(new.output, '') <> '' OR coalesce(new.error_message, '') <> '');
END;

CREATE TRIGGER test_results_fts_after_delete AFTER DELETE ON test_results BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    SELECT 'delete', old.id,
        replace(CASE WHEN length(old.output) > 16000
            THEN rtrim(substr(old.output, 1, 16001), replace(replace(replace(replace(
                substr(old.output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(old.output, '') END, char(304), 'i'),
        replace(CASE WHEN length(old.error_message) > 16000
            THEN rtrim(substr(old.error_message, 1, 16001), replace(replace(replace(replace(
                substr(old.error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(old.error_message, '') END, char(304), 'i')
    WHERE (coalesce(old.output, '') <> '' OR coalesce(old.error_message, '') <> '');
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
    FROM test_results WHERE id = new.id AND (coalesce(output, '') <> '' OR coalesce(error_message, '') <> '');
END;

CREATE TRIGGER test_results_fts_after_update AFTER UPDATE OF id, output, error_message ON test_results
WHEN old.id IS NOT new.id
    OR old.output IS NOT new.output
    OR old.error_message IS NOT new.error_message
BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    SELECT 'delete', old.id,
        replace(CASE WHEN length(old.output) > 16000
            THEN rtrim(substr(old.output, 1, 16001), replace(replace(replace(replace(
                substr(old.output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(old.output, '') END, char(304), 'i'),
        replace(CASE WHEN length(old.error_message) > 16000
            THEN rtrim(substr(old.error_message, 1, 16001), replace(replace(replace(replace(
                substr(old.error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(old.error_message, '') END, char(304), 'i')
    WHERE (coalesce(old.output, '') <> '' OR coalesce(old.error_message, '') <> '');
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    SELECT 'delete', id, output, error_message FROM test_results_fts_replaced
    WHERE id = new.id AND old.id IS NOT new.id;
    DELETE FROM test_results_fts_replaced WHERE id = new.id AND old.id IS NOT new.id;
    INSERT INTO test_results_fts (rowid, output, error_message)
    SELECT new.id,
        replace(CASE WHEN length(new.output) > 16000
            THEN rtrim(substr(new.output, 1, 16001), replace(replace(replace(replace(
                substr(new.output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(new.output, '') END, char(304), 'i'),
        replace(CASE WHEN length(new.error_message) > 16000
            THEN rtrim(substr(new.error_message, 1, 16001), replace(replace(replace(replace(
                substr(new.error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(new.error_message, '') END, char(304), 'i')
    WHERE (coalesce(new.output, '') <> '' OR coalesce(new.error_message, '') <> '');
END;
