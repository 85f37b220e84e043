-- Rows with no text to search are left out of the search index.
--
-- An empty document matches no search, yet FTS5 kept one for each such row: an entry in its
-- document sizes, and a trigger's work on each insert, delete and update. Most results (a
-- passing test) hold no output and no error message. Inserting 100,000 rows into a new
-- database, 1 in 100 with an error message, took 18 us a row with them and 12 us without.
--
-- A row is in the index exactly when it holds text: its output or its error message is
-- neither NULL nor ''. Every trigger tests this of the same values, so what an insert leaves
-- out, the matching delete leaves alone. bm25's row count and average length now cover only
-- the rows with text, the only ones a search can find. Otherwise the triggers are 0005's,
-- and so is the text they index; the INSERT triggers have WHEN clauses, so that a row with
-- nothing to index or forget costs no trigger run. The statement at the end takes the rows
-- without text out of the index.

DROP TRIGGER test_results_fts_before_insert;
DROP TRIGGER test_results_fts_after_insert;
DROP TRIGGER test_results_fts_after_delete;
DROP TRIGGER test_results_fts_before_update;
DROP TRIGGER test_results_fts_after_update;

-- A row given no id gets a new one, which replaces nothing: SQLite shows such a row's id to a
-- BEFORE trigger as -1, so the WHEN clause skips it unless a row -1 is stored. (Were it shown
-- otherwise, the trigger would run, and keep nothing, as 0005's does.)
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

INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
SELECT 'delete', id, '', '' FROM test_results
WHERE coalesce(output, '') = '' AND coalesce(error_message, '') = '';
