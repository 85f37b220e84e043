-- A number column holds a number: `test_results.execution_time`, `memory_usage`,
-- `test_cases_passed`, `test_cases_total` and `run_id`, `result_artifacts.result_id` and
-- `size`, and `file_records.size` now refuse text and blobs.
--
-- SQLite's type affinity turns text that reads as a number into that number, but keeps any
-- other text (`'abc'`, `'0x10'`, `''`) and every blob as given in an INTEGER or REAL column,
-- and a real (`1.5`, `1e20`) in an INTEGER one. The `>= 0` CHECKs took them, as SQLite
-- orders text and blobs above every number. `get_result` refused such a row, but the
-- run-history answers, computed in SQL, passed the value through: `slowest_tests` gave bytes
-- as a float's p50, and `duration_figures`, `compare_runs`, `list_test_history` and
-- `counterexamples` did alike. Each number column now has a CHECK of its stored type, named
-- for it: `test_results_execution_time_is_a_number` (`typeof = 'real'`, which REAL affinity
-- makes of every number) and `<table>_<column>_is_an_integer` (`'integer'`; NULL too for
-- `run_id`). Ids are integers already (INTEGER PRIMARY KEY). The migrator's own tables are
-- left as they are: the package alone writes them.
--
-- SQLite cannot add a CHECK in place, so the three tables are rebuilt by the recipe of 0013:
-- ids, rowids, AUTOINCREMENT counters, indexes and triggers as they were (the search
-- triggers of 0013, the metadata-key triggers of 0014); the contentless search index is
-- keyed by id and stays valid, and result_artifacts still references test_results. A value of
-- another type stored already names no number to keep: the migration stops, naming the
-- table, the column and the first 20 such rows, and changes nothing, to be mended and migrated
-- again. A `run_id` or `result_id` of another type has no parent, and the check of foreign
-- keys that precedes every migration names its row first.
--
-- The CHECKs cost an insert next to nothing. On the bare test_results table in memory, 10,000
-- inserts took 61.5 ms with them and 59.0 ms without (best of 25), about 50 ns a CHECK; with
-- the schema's triggers and indexes, in a file, 306.8 ms and 303.0 ms (best of 21; rounds of
-- 9 on the loaded machine gave 305-324 and 304-312 ms): about 1 %, within the noise.
-- Rebuilding 200,000 results, 50,000 links and 100,000 file records took 2.3 s.
--
-- A time is also held to the model's range: `test_results_execution_time_finite_up_to_1e12`
-- (`execution_time <= 1e12`, MAX_EXECUTION_TIME) refuses one above it, and `9e999`, which
-- SQLite reads as infinity and which `>= 0` took; SQLite stores NaN as NULL, which NOT NULL
-- refuses. `slowest_tests`, `duration_figures` and `result_stats` gave such a time as inf,
-- and the CLI's test-history stopped on it. This CHECK was added to 0016 before any release,
-- so that the table is rebuilt once; a time stored above the range before it stops the
-- migration too, naming its rows. It costs one comparison: 10,000 inserts on the bare table
-- in memory took 61.9 ms with it and 61.4 ms without (best of 25), about 50 ns a row.
--
-- The integer columns need no such CHECK: the model's bound is MAX_INT, 2**63 - 1, which is
-- SQLite's largest integer; a larger one is stored as a real, which the CHECK of the stored
-- type refuses. No answer sums them, so SQLite's `sum()` cannot overflow on them.
--
-- PostgreSQL's columns are typed; its 0016 holds `execution_time` to the same range.

-- A stored value of another type names no number, and a time above 1e12 seconds none the
-- model reads: the migration stops, naming its rows.

SELECT json_extract('{}', 'test_results.execution_time holds a value that is not a number '
    || '(text or a blob) in the results of ids ' || found
    || ': write a number there, then migrate')
FROM (
    SELECT group_concat(named, ', ') AS found FROM (
        SELECT id AS named FROM test_results
        WHERE typeof(execution_time) <> 'real' ORDER BY id LIMIT 20
    )
)
WHERE found IS NOT NULL;

SELECT json_extract('{}', 'test_results.execution_time holds a time that is not finite or is '
    || 'above 1e12 seconds in the results of ids ' || found
    || ': write a time from 0 to 1e12 seconds there, then migrate')
FROM (
    SELECT group_concat(named, ', ') AS found FROM (
        SELECT id AS named FROM test_results
        WHERE NOT execution_time <= 1e12 ORDER BY id LIMIT 20
    )
)
WHERE found IS NOT NULL;

SELECT json_extract('{}', 'test_results.memory_usage holds a value that is not an integer '
    || '(text, a blob or a real) in the results of ids ' || found
    || ': write an integer there, then migrate')
FROM (
    SELECT group_concat(named, ', ') AS found FROM (
        SELECT id AS named FROM test_results
        WHERE typeof(memory_usage) <> 'integer' ORDER BY id LIMIT 20
    )
)
WHERE found IS NOT NULL;

SELECT json_extract('{}', 'test_results.test_cases_passed holds a value that is not an integer '
    || '(text, a blob or a real) in the results of ids ' || found
    || ': write an integer there, then migrate')
FROM (
    SELECT group_concat(named, ', ') AS found FROM (
        SELECT id AS named FROM test_results
        WHERE typeof(test_cases_passed) <> 'integer' ORDER BY id LIMIT 20
    )
)
WHERE found IS NOT NULL;

SELECT json_extract('{}', 'test_results.test_cases_total holds a value that is not an integer '
    || '(text, a blob or a real) in the results of ids ' || found
    || ': write an integer there, then migrate')
FROM (
    SELECT group_concat(named, ', ') AS found FROM (
        SELECT id AS named FROM test_results
        WHERE typeof(test_cases_total) <> 'integer' ORDER BY id LIMIT 20
    )
)
WHERE found IS NOT NULL;

SELECT json_extract('{}', 'result_artifacts.size holds a value that is not an integer '
    || '(text, a blob or a real) in the links (result_id, role) ' || found
    || ': write an integer there, then migrate')
FROM (
    SELECT group_concat(named, ', ') AS found FROM (
        SELECT '(' || result_id || ', ' || role || ')' AS named FROM result_artifacts
        WHERE typeof(size) <> 'integer' ORDER BY rowid LIMIT 20
    )
)
WHERE found IS NOT NULL;

SELECT json_extract('{}', 'file_records.size holds a value that is not an integer '
    || '(text, a blob or a real) in the records of ids ' || found
    || ': write an integer there, then migrate')
FROM (
    SELECT group_concat(named, ', ') AS found FROM (
        SELECT id AS named FROM file_records
        WHERE typeof(size) <> 'integer' ORDER BY id LIMIT 20
    )
)
WHERE found IS NOT NULL;

CREATE TABLE test_results_rebuilt (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    test_type         TEXT NOT NULL CHECK (test_type IN ('stress', 'tle', 'unit', 'integration')),
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'passed', 'failed', 'timeout', 'error', 'skipped')),
    execution_time    REAL NOT NULL DEFAULT 0 CHECK (execution_time >= 0)
                      CONSTRAINT test_results_execution_time_is_a_number CHECK (typeof(execution_time) = 'real')
                      CONSTRAINT test_results_execution_time_finite_up_to_1e12 CHECK (execution_time <= 1e12),
    memory_usage      INTEGER NOT NULL DEFAULT 0 CHECK (memory_usage >= 0)
                      CONSTRAINT test_results_memory_usage_is_an_integer CHECK (typeof(memory_usage) = 'integer'),
    test_cases_passed INTEGER NOT NULL DEFAULT 0 CHECK (test_cases_passed >= 0)
                      CONSTRAINT test_results_test_cases_passed_is_an_integer CHECK (typeof(test_cases_passed) = 'integer'),
    test_cases_total  INTEGER NOT NULL DEFAULT 0 CHECK (test_cases_total >= 0)
                      CONSTRAINT test_results_test_cases_total_is_an_integer CHECK (typeof(test_cases_total) = 'integer'),
    error_message     TEXT,
    output            TEXT,
    created_at        TIMESTAMP_TEXT NOT NULL
                      CHECK (typeof(created_at) = 'text' AND created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    metadata          JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    run_id            INTEGER REFERENCES runs (id) ON DELETE CASCADE
                      CONSTRAINT test_results_run_id_is_an_integer CHECK (typeof(run_id) IN ('integer', 'null')),
    test_id           TEXT CHECK (test_id <> ''),
    CHECK (test_cases_passed <= test_cases_total)
);

INSERT INTO test_results_rebuilt (
    id, test_type, status, execution_time, memory_usage, test_cases_passed, test_cases_total,
    error_message, output, created_at, metadata, run_id, test_id
)
SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed, test_cases_total,
       error_message, output, created_at, metadata, run_id, test_id
FROM test_results;

DELETE FROM sqlite_sequence WHERE name = 'test_results_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'test_results_rebuilt', seq FROM sqlite_sequence WHERE name = 'test_results';

DROP TABLE test_results;
ALTER TABLE test_results_rebuilt RENAME TO test_results;

CREATE INDEX test_results_created_idx ON test_results (created_at DESC, id DESC);
CREATE INDEX test_results_type_created_idx ON test_results (test_type, created_at DESC, id DESC);
CREATE INDEX test_results_status_created_idx ON test_results (status, created_at DESC, id DESC);
CREATE UNIQUE INDEX test_results_run_test_idx ON test_results (run_id, test_id)
    WHERE run_id IS NOT NULL;
CREATE INDEX test_results_test_created_idx
    ON test_results (test_id, created_at DESC, id DESC, status, run_id, execution_time)
    WHERE test_id IS NOT NULL;

-- The search triggers, as 0013 left them, and the triggers of 0014 that keep each key of a
-- result's metadata once.

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

CREATE TRIGGER test_results_metadata_keys_once_insert BEFORE INSERT ON test_results
WHEN json_valid(new.metadata) AND json_type(new.metadata) = 'object' AND CASE
    WHEN instr(substr(new.metadata, 2), '{') > 0 THEN EXISTS (
        SELECT 1 FROM json_tree(new.metadata) GROUP BY parent, key HAVING count(*) > 1)
    ELSE EXISTS (SELECT 1 FROM json_each(new.metadata) GROUP BY key HAVING count(*) > 1)
    END
BEGIN
    SELECT RAISE(ABORT, 'a JSON object with a key twice, which SQLite reads as its first value and PostgreSQL as its last: test_results.metadata');
END;

CREATE TRIGGER test_results_metadata_keys_once_update BEFORE UPDATE OF metadata ON test_results
WHEN json_valid(new.metadata) AND json_type(new.metadata) = 'object' AND CASE
    WHEN instr(substr(new.metadata, 2), '{') > 0 THEN EXISTS (
        SELECT 1 FROM json_tree(new.metadata) GROUP BY parent, key HAVING count(*) > 1)
    ELSE EXISTS (SELECT 1 FROM json_each(new.metadata) GROUP BY key HAVING count(*) > 1)
    END
BEGIN
    SELECT RAISE(ABORT, 'a JSON object with a key twice, which SQLite reads as its first value and PostgreSQL as its last: test_results.metadata');
END;


CREATE TABLE result_artifacts_rebuilt (
    result_id INTEGER NOT NULL REFERENCES test_results (id) ON DELETE CASCADE
              CONSTRAINT result_artifacts_result_id_is_an_integer CHECK (typeof(result_id) = 'integer'),
    role      TEXT NOT NULL CHECK (role IN ('input', 'expected', 'actual')),
    sha256    TEXT NOT NULL CHECK (length(sha256) = 64 AND NOT sha256 GLOB '*[^0-9a-f]*'),
    size      INTEGER NOT NULL CHECK (size >= 0)
              CONSTRAINT result_artifacts_size_is_an_integer CHECK (typeof(size) = 'integer'),
    PRIMARY KEY (result_id, role)
);

INSERT INTO result_artifacts_rebuilt (rowid, result_id, role, sha256, size)
SELECT rowid, result_id, role, sha256, size FROM result_artifacts;

DROP TABLE result_artifacts;
ALTER TABLE result_artifacts_rebuilt RENAME TO result_artifacts;

CREATE INDEX result_artifacts_sha256_idx ON result_artifacts (sha256);

CREATE TABLE file_records_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    path        TEXT NOT NULL UNIQUE CHECK (path <> ''),
    size        INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0)
                CONSTRAINT file_records_size_is_an_integer CHECK (typeof(size) = 'integer'),
    hash        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP_TEXT NOT NULL
                CHECK (typeof(created_at) = 'text' AND created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    accessed_at TIMESTAMP_TEXT NOT NULL
                CHECK (typeof(accessed_at) = 'text' AND accessed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    metadata    JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object')
);

INSERT INTO file_records_rebuilt (id, path, size, hash, created_at, accessed_at, metadata)
SELECT id, path, size, hash, created_at, accessed_at, metadata FROM file_records;

DELETE FROM sqlite_sequence WHERE name = 'file_records_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'file_records_rebuilt', seq FROM sqlite_sequence WHERE name = 'file_records';

DROP TABLE file_records;
ALTER TABLE file_records_rebuilt RENAME TO file_records;

CREATE INDEX file_records_accessed_idx ON file_records (accessed_at DESC, id DESC);
