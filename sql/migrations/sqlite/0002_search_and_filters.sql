-- Full-text search over the output and error message of each test result, and the indexes the
-- filtered listings use.
--
-- test_results_fts is a contentless FTS5 table: it holds the index and nothing else. Its one
-- column, body, is the first 16,000 characters of output, a space, and the first 16,000
-- characters of error_message: the very text PostgreSQL's search_vector reads, so that both
-- engines index the same words. A word is a run of letters and digits; case is folded and
-- accents are kept, as PostgreSQL's 'simple' configuration does. Triggers keep the index in
-- step with test_results; the INSERT at the end indexes the rows already there.

CREATE VIRTUAL TABLE test_results_fts USING fts5(
    body,
    content = '',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER test_results_fts_after_insert AFTER INSERT ON test_results BEGIN
    INSERT INTO test_results_fts (rowid, body)
    VALUES (
        new.id,
        substr(coalesce(new.output, ''), 1, 16000) || ' '
            || substr(coalesce(new.error_message, ''), 1, 16000)
    );
END;

-- A contentless table forgets a row by being given the text it indexed.
CREATE TRIGGER test_results_fts_after_delete AFTER DELETE ON test_results BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, body)
    VALUES (
        'delete',
        old.id,
        substr(coalesce(old.output, ''), 1, 16000) || ' '
            || substr(coalesce(old.error_message, ''), 1, 16000)
    );
END;

CREATE TRIGGER test_results_fts_after_update AFTER UPDATE OF id, output, error_message ON test_results
WHEN old.id IS NOT new.id
    OR old.output IS NOT new.output
    OR old.error_message IS NOT new.error_message
BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, body)
    VALUES (
        'delete',
        old.id,
        substr(coalesce(old.output, ''), 1, 16000) || ' '
            || substr(coalesce(old.error_message, ''), 1, 16000)
    );
    INSERT INTO test_results_fts (rowid, body)
    VALUES (
        new.id,
        substr(coalesce(new.output, ''), 1, 16000) || ' '
            || substr(coalesce(new.error_message, ''), 1, 16000)
    );
END;

INSERT INTO test_results_fts (rowid, body)
SELECT id, substr(coalesce(output, ''), 1, 16000) || ' ' || substr(coalesce(error_message, ''), 1, 16000)
FROM test_results;

-- Listing by status, newest first (by type and by time have their indexes since 0001).
CREATE INDEX test_results_status_created_idx ON test_results (status, created_at DESC, id DESC);
