-- Full-text search over the output and error message of each test result, and the indexes the
-- filtered listings use.
--
-- search_vector indexes the first 16,000 characters of output, a space, and the first 16,000
-- characters of error_message: the very text SQLite's test_results_fts reads. Every character
-- that is neither a letter, a digit nor a space becomes a space first, so that a word is a run
-- of letters and digits, as in SQLite's FTS5; PostgreSQL's parser would otherwise read
-- `solve.cpp:42` or `a-b` as one word. The 'simple' configuration folds case, keeps accents
-- and drops no word. Adding the column computes it for the rows already there.

ALTER TABLE test_results ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    to_tsvector(
        'simple'::regconfig,
        regexp_replace(
            substr(coalesce(output, ''), 1, 16000) || ' '
                || substr(coalesce(error_message, ''), 1, 16000),
            '[^[:alnum:][:space:]]', ' ', 'g'
        )
    )
) STORED;

CREATE INDEX test_results_search_idx ON test_results USING gin (search_vector);

-- Listing by a metadata subset (`metadata @> '{"solution": "a.cpp"}'`) and by status.
CREATE INDEX test_results_metadata_idx ON test_results USING gin (metadata jsonb_path_ops);
CREATE INDEX test_results_status_created_idx ON test_results (status, created_at DESC, id DESC);

-- Paths, sections and keys sort by code point, as on SQLite, and a path prefix is a range of
-- the path index whatever the database's collation.
ALTER TABLE file_records ALTER COLUMN path TYPE text COLLATE "C";
ALTER TABLE config_entries
    ALTER COLUMN section TYPE text COLLATE "C",
    ALTER COLUMN key TYPE text COLLATE "C";
