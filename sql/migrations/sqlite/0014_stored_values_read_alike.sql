-- A JSON object stored in `test_results.metadata` or `runs.labels` holds each key once.
--
-- SQLite stores JSON as the text it was given, and plain SQL may give it an object with one key
-- twice: `{"commit":"a","commit":"b"}`. SQLite's json_extract and json_each read the first
-- value, where PostgreSQL's jsonb keeps the last and Python's json reads the last: `flaky_tests`
-- grouped such a run's results by commit `a` on SQLite and `b` on PostgreSQL, and the metadata
-- filter of `list_test_results` chose a result by a value that its model, once read, did not
-- hold. Triggers now refuse such an object at any depth, keys compared as decoded (`"a"` and
-- `"\u0061"` are one key), on every insert and every update of those columns.
--
-- An object is walked in SQL, each member against the ones before it: json_tree when its text
-- holds a `{` past its first character (it may nest an object), else json_each alone. That
-- costs 5 to 12 % more CPU in `save_results` of 50,000 results with metadata (1.63 to 1.81 s,
-- median of 9 on a loaded machine). Cheaper forms were slower or wrong: grouping the walk by
-- key sorts (15 %), finding a key's text twice with instr costs more than the walk, and
-- SQLite's json_patch keeps both members of a key. Text that is no JSON object is left to the
-- CHECK.
--
-- An object already stored with a key twice has no one value to keep: the migration stops and
-- names the ids of the first 20 such rows, changing nothing, to be mended and migrated again.
-- SQLite gives no statement of a migration a way to fail with its own text but a JSON path
-- that is no path, whose error quotes it. PostgreSQL's jsonb kept one value per key at write,
-- and its 0014 changes nothing.

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
        SELECT 1 FROM json_tree(new.metadata) AS a
        JOIN json_tree(new.metadata) AS b ON b.parent = a.parent AND b.key = a.key AND b.id < a.id)
    ELSE EXISTS (
        SELECT 1 FROM json_each(new.metadata) AS a
        JOIN json_each(new.metadata) AS b ON b.key = a.key AND b.id < a.id)
    END
BEGIN
    SELECT RAISE(ABORT, 'a JSON object with a key twice, which SQLite reads as its first value and PostgreSQL as its last: test_results.metadata');
END;

CREATE TRIGGER test_results_metadata_keys_once_update BEFORE UPDATE OF metadata ON test_results
WHEN json_valid(new.metadata) AND json_type(new.metadata) = 'object' AND CASE
    WHEN instr(substr(new.metadata, 2), '{') > 0 THEN EXISTS (
        SELECT 1 FROM json_tree(new.metadata) AS a
        JOIN json_tree(new.metadata) AS b ON b.parent = a.parent AND b.key = a.key AND b.id < a.id)
    ELSE EXISTS (
        SELECT 1 FROM json_each(new.metadata) AS a
        JOIN json_each(new.metadata) AS b ON b.key = a.key AND b.id < a.id)
    END
BEGIN
    SELECT RAISE(ABORT, 'a JSON object with a key twice, which SQLite reads as its first value and PostgreSQL as its last: test_results.metadata');
END;

CREATE TRIGGER runs_labels_keys_once_insert BEFORE INSERT ON runs
WHEN json_valid(new.labels) AND json_type(new.labels) = 'object' AND CASE
    WHEN instr(substr(new.labels, 2), '{') > 0 THEN EXISTS (
        SELECT 1 FROM json_tree(new.labels) AS a
        JOIN json_tree(new.labels) AS b ON b.parent = a.parent AND b.key = a.key AND b.id < a.id)
    ELSE EXISTS (
        SELECT 1 FROM json_each(new.labels) AS a
        JOIN json_each(new.labels) AS b ON b.key = a.key AND b.id < a.id)
    END
BEGIN
    SELECT RAISE(ABORT, 'a JSON object with a key twice, which SQLite reads as its first value and PostgreSQL as its last: runs.labels');
END;

CREATE TRIGGER runs_labels_keys_once_update BEFORE UPDATE OF labels ON runs
WHEN json_valid(new.labels) AND json_type(new.labels) = 'object' AND CASE
    WHEN instr(substr(new.labels, 2), '{') > 0 THEN EXISTS (
        SELECT 1 FROM json_tree(new.labels) AS a
        JOIN json_tree(new.labels) AS b ON b.parent = a.parent AND b.key = a.key AND b.id < a.id)
    ELSE EXISTS (
        SELECT 1 FROM json_each(new.labels) AS a
        JOIN json_each(new.labels) AS b ON b.key = a.key AND b.id < a.id)
    END
BEGIN
    SELECT RAISE(ABORT, 'a JSON object with a key twice, which SQLite reads as its first value and PostgreSQL as its last: runs.labels');
END;
