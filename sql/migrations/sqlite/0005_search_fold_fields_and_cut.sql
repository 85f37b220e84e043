-- The search index, rebuilt so that both engines agree on what it finds.
--
-- - Two columns, output and error_message: an FTS5 phrase never spans two columns, so a phrase
--   cannot match across the end of the output and the start of the error message.
-- - A cut word is left out. Each field is read whole up to 16,000 characters. A longer one is
--   read to its 16,001st character, less its trailing run of characters that are not white
--   space (space, tab, CR, LF): the word that the limit cuts is not indexed, and no fragment
--   of it can be found. rtrim strips the characters that occur among the last 64 read, so a
--   cut word longer than 64 characters may keep a fragment of the characters it does not
--   repeat there. PostgreSQL's 0005 cuts with the very same expression.
-- - One fold. FTS5's unicode61 folds case by Unicode 6.1 (ς, ſ, µ and the Greek symbol letters
--   fold to σ, s, μ and their letters; PostgreSQL's lower() does not) and keeps İ apart from i
--   (PostgreSQL's lower() makes it i). PostgreSQL now folds those letters as unicode61 does,
--   and this index reads İ (char(304)) as i: replace() below. persistence.search._fold holds the same table
--   for the search text and the snippets.
-- - INSERT OR REPLACE and UPDATE OR REPLACE delete the row they replace without firing delete
--   triggers (unless recursive_triggers is on). The BEFORE triggers keep the indexed text of a
--   row that a write may replace in test_results_fts_replaced; the AFTER triggers remove it from
--   the index when the write went through, and forget it. A write that is ignored or becomes an
--   upsert's UPDATE leaves a kept row behind, which the next write with that id replaces first.
--
-- The INSERT at the end indexes the rows already there.

DROP TRIGGER test_results_fts_after_insert;
DROP TRIGGER test_results_fts_after_delete;
DROP TRIGGER test_results_fts_after_update;
DROP TABLE test_results_fts;

CREATE VIRTUAL TABLE test_results_fts USING fts5(
    output,
    error_message,
    content = '',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TABLE test_results_fts_replaced (
    id            INTEGER PRIMARY KEY,
    output        TEXT NOT NULL,
    error_message TEXT NOT NULL
);

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

INSERT INTO test_results_fts (rowid, output, error_message)
SELECT id,
    replace(CASE WHEN length(output) > 16000
            THEN rtrim(substr(output, 1, 16001), replace(replace(replace(replace(
                substr(output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(output, '') END, char(304), 'i'),
    replace(CASE WHEN length(error_message) > 16000
            THEN rtrim(substr(error_message, 1, 16001), replace(replace(replace(replace(
                substr(error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(error_message, '') END, char(304), 'i')
FROM test_results;
