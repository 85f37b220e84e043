-- A JSON object stored in `test_results.metadata` or `runs.labels` holds each key once, and
-- the times of `file_records` are stored in one form, UTC to the microsecond, as 0013 holds the
-- history tables' times.
--
-- SQLite stores JSON as the text it was given, and plain SQL may give it an object with one key
-- twice: `{"commit":"a","commit":"b"}`. SQLite's json_extract and json_each read the first
-- value, where PostgreSQL's jsonb keeps the last and Python's json reads the last: `flaky_tests`
-- grouped such a run's results by commit `a` on SQLite and `b` on PostgreSQL, and the metadata
-- filter of `list_test_results` chose a result by a value that its model, once read, did not
-- hold. Triggers now refuse such an object at any depth, keys compared as decoded (`"a"` and
-- `"\u0061"` are one key), on every insert and every update of those columns.
--
-- An object's members are grouped by key in SQL: json_tree (by parent and key) when its text
-- holds a `{` past its first character (it may nest an object), else json_each alone. The
-- work grows with the object's size; comparing each member with the ones before it took 4.9 s
-- for an object of 5,000 keys, holding the write lock. It costs about 10 % more CPU in
-- `save_results` of 50,000 results with small metadata, paid alike by every writer. SQLite's
-- json_patch keeps both members of a key, so it cannot do this. Text that is no JSON object
-- is left to the CHECK.
--
-- An object already stored with a key twice has no one value to keep: the migration stops and
-- names the ids of the first 20 such rows, changing nothing, to be mended and migrated again.
-- SQLite gives no statement of a migration a way to fail with its own text but a JSON path
-- that is no path, whose error quotes it. PostgreSQL's jsonb kept one value per key at write,
-- and its 0014 changes nothing.
--
-- 0013 left `file_records` out: its `created_at` and `accessed_at` still took any text, and a
-- time that plain SQL wrote with another offset, a `Z` or a space sorted by its digits, so
-- `all_file_records` (newest access first) put it out of order and the `accessed_from` /
-- `accessed_until` window of `list_file_records` left it out or took it in where PostgreSQL,
-- which compares instants, did the opposite. Both columns now CHECK the package's form, and
-- the table is rebuilt as 0013 rebuilt its two (ids, AUTOINCREMENT counter and index as they
-- were; no trigger is on it). A stored time in another form with its offset is written in the
-- form, in UTC, its fraction's digits kept; one without an offset, or that SQLite's date
-- functions cannot read, names no instant, and the migration stops naming the records' ids.
-- The whole of 0014 took 7.7 s over 200,000 results and 100,000 file records (loaded machine).

SELECT json_extract('{}', 'test_results.metadata holds a JSON object with a key twice in the '
    || 'results of ids ' || ids || ': keep one value of each key, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT r.id FROM test_results AS r
        WHERE json_valid(r.metadata)
          AND EXISTS (SELECT 1 FROM json_tree(r.metadata) GROUP BY parent, key HAVING count(*) > 1)
        ORDER BY r.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

SELECT json_extract('{}', 'runs.labels holds a JSON object with a key twice in the runs of ids '
    || ids || ': keep one value of each key, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT u.id FROM runs AS u
        WHERE json_valid(u.labels)
          AND EXISTS (SELECT 1 FROM json_tree(u.labels) GROUP BY parent, key HAVING count(*) > 1)
        ORDER BY u.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

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

CREATE TRIGGER runs_labels_keys_once_insert BEFORE INSERT ON runs
WHEN json_valid(new.labels) AND json_type(new.labels) = 'object' AND CASE
    WHEN instr(substr(new.labels, 2), '{') > 0 THEN EXISTS (
        SELECT 1 FROM json_tree(new.labels) GROUP BY parent, key HAVING count(*) > 1)
    ELSE EXISTS (SELECT 1 FROM json_each(new.labels) GROUP BY key HAVING count(*) > 1)
    END
BEGIN
    SELECT RAISE(ABORT, 'a JSON object with a key twice, which SQLite reads as its first value and PostgreSQL as its last: runs.labels');
END;

CREATE TRIGGER runs_labels_keys_once_update BEFORE UPDATE OF labels ON runs
WHEN json_valid(new.labels) AND json_type(new.labels) = 'object' AND CASE
    WHEN instr(substr(new.labels, 2), '{') > 0 THEN EXISTS (
        SELECT 1 FROM json_tree(new.labels) GROUP BY parent, key HAVING count(*) > 1)
    ELSE EXISTS (SELECT 1 FROM json_each(new.labels) GROUP BY key HAVING count(*) > 1)
    END
BEGIN
    SELECT RAISE(ABORT, 'a JSON object with a key twice, which SQLite reads as its first value and PostgreSQL as its last: runs.labels');
END;

-- Each stored file time in another form, once, with its UTC form when it can be read (as 0013).
CREATE TABLE file_time_forms (stored TEXT PRIMARY KEY, zone TEXT, whole TEXT, fraction TEXT, utc TEXT);

INSERT OR IGNORE INTO file_time_forms (stored)
SELECT created_at FROM file_records
WHERE typeof(created_at) = 'text' AND created_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00';

INSERT OR IGNORE INTO file_time_forms (stored)
SELECT accessed_at FROM file_records
WHERE typeof(accessed_at) = 'text' AND accessed_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00';

UPDATE file_time_forms SET zone = CASE
    WHEN stored GLOB '*Z' THEN 'Z'
    WHEN stored GLOB '*[-+][0-9][0-9]:[0-9][0-9]' THEN substr(stored, -6)
END;

UPDATE file_time_forms SET
    whole = strftime('%Y-%m-%dT%H:%M:%S', substr(stored, 1, 19) || zone),
    fraction = CASE WHEN substr(stored, 20, 1) = '.'
                    THEN substr(stored, 21, length(stored) - 20 - length(zone)) ELSE '' END
WHERE zone IS NOT NULL;

UPDATE file_time_forms SET utc = whole || '.' || substr(fraction || '000000', 1, 6) || '+00:00'
WHERE whole IS NOT NULL AND length(fraction) <= 6 AND fraction NOT GLOB '*[^0-9]*';

SELECT json_extract('{}', 'file_records holds a time that names no instant (without its UTC '
    || 'offset, or no time) in the records of ids ' || ids
    || ': write it with its offset, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT d.id FROM file_records AS d
        WHERE (d.created_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
               AND (SELECT f.utc FROM file_time_forms AS f WHERE f.stored = d.created_at) IS NULL)
           OR (d.accessed_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
               AND (SELECT f.utc FROM file_time_forms AS f WHERE f.stored = d.accessed_at) IS NULL)
        ORDER BY d.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

CREATE TABLE file_records_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    path        TEXT NOT NULL UNIQUE CHECK (path <> ''),
    size        INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    hash        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP_TEXT NOT NULL
                CHECK (typeof(created_at) = 'text' AND created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    accessed_at TIMESTAMP_TEXT NOT NULL
                CHECK (typeof(accessed_at) = 'text' AND accessed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    metadata    JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object')
);

INSERT INTO file_records_rebuilt (id, path, size, hash, created_at, accessed_at, metadata)
SELECT id, path, size, hash,
       CASE WHEN created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00' THEN created_at
            ELSE coalesce((SELECT f.utc FROM file_time_forms AS f WHERE f.stored = created_at), created_at) END,
       CASE WHEN accessed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00' THEN accessed_at
            ELSE coalesce((SELECT f.utc FROM file_time_forms AS f WHERE f.stored = accessed_at), accessed_at) END,
       metadata
FROM file_records;

DELETE FROM sqlite_sequence WHERE name = 'file_records_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'file_records_rebuilt', seq FROM sqlite_sequence WHERE name = 'file_records';

DROP TABLE file_records;
ALTER TABLE file_records_rebuilt RENAME TO file_records;

DROP TABLE file_time_forms;

CREATE INDEX file_records_accessed_idx ON file_records (accessed_at DESC, id DESC);
