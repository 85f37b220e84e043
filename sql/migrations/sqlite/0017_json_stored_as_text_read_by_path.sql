-- `test_results.metadata` and `runs.labels` hold JSON text, never a blob, and a run's `commit`
-- label is a key that SQLite's JSON paths reach.
--
-- SQLite's json_valid takes a blob of JSON text, so the columns' CHECK (json_valid and an
-- object) let plain SQL store one: the package read it as bytes where a dict is typed (it now
-- refuses it on read), and every export of such a run failed. PostgreSQL's jsonb holds no blob.
--
-- SQLite reads an object's keys two ways: json_each decodes a key's escapes, and a path such as
-- `$.commit` compares the key as written. A `commit` key written `"comm\u0069t"` is the same key
-- to Python's json, to PostgreSQL's jsonb and to json_each, but `$.commit` does not reach it, so
-- `flaky_tests` left such a run out on SQLite alone. Only `commit` is read by a path: triggers
-- refuse a `commit` label that the path cannot reach. sqlc cannot analyse a query that reads
-- json_each's columns, so the query cannot read the label that way itself.
--
-- A row already stored either way has no form the migration may choose for it: the migration
-- stops and names the ids of the first 20 such rows, changing nothing, to be mended and
-- migrated again (as 0014 does).

SELECT json_extract('{}', 'test_results.metadata holds a blob, not JSON text, in the results of ids '
    || ids || ': store it as text, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT r.id FROM test_results AS r WHERE typeof(r.metadata) <> 'text' ORDER BY r.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

SELECT json_extract('{}', 'runs.labels holds a blob, not JSON text, in the runs of ids '
    || ids || ': store it as text, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT u.id FROM runs AS u WHERE typeof(u.labels) <> 'text' ORDER BY u.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

SELECT json_extract('{}', 'runs.labels writes its commit key with an escape, which SQLite''s JSON '
    || 'paths do not read as commit, in the runs of ids ' || ids
    || ': write the key as commit, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT u.id FROM runs AS u
        WHERE json_valid(u.labels) AND json_type(u.labels, '$.commit') IS NULL
          AND EXISTS (SELECT 1 FROM json_each(u.labels) WHERE key = 'commit')
        ORDER BY u.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

CREATE TRIGGER test_results_metadata_text_insert BEFORE INSERT ON test_results
WHEN typeof(new.metadata) <> 'text'
BEGIN
    SELECT RAISE(ABORT, 'test_results.metadata must be JSON text, not a blob, which SQLite''s json_valid takes and no reader does');
END;

CREATE TRIGGER test_results_metadata_text_update BEFORE UPDATE OF metadata ON test_results
WHEN typeof(new.metadata) <> 'text'
BEGIN
    SELECT RAISE(ABORT, 'test_results.metadata must be JSON text, not a blob, which SQLite''s json_valid takes and no reader does');
END;

CREATE TRIGGER runs_labels_text_insert BEFORE INSERT ON runs
WHEN typeof(new.labels) <> 'text' OR (json_valid(new.labels) AND json_type(new.labels, '$.commit') IS NULL
    AND EXISTS (SELECT 1 FROM json_each(new.labels) WHERE key = 'commit'))
BEGIN
    SELECT RAISE(ABORT, 'runs.labels must be JSON text, not a blob, with its commit key written as commit, which SQLite''s JSON paths read');
END;

CREATE TRIGGER runs_labels_text_update BEFORE UPDATE OF labels ON runs
WHEN typeof(new.labels) <> 'text' OR (json_valid(new.labels) AND json_type(new.labels, '$.commit') IS NULL
    AND EXISTS (SELECT 1 FROM json_each(new.labels) WHERE key = 'commit'))
BEGIN
    SELECT RAISE(ABORT, 'runs.labels must be JSON text, not a blob, with its commit key written as commit, which SQLite''s JSON paths read');
END;
