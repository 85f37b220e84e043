-- The search index, rebuilt so that both engines agree on what it finds.
--
-- - One fold. SQLite's FTS5 (unicode61) folds case by Unicode 6.1: ς, ſ, µ, ẛ, U+1FBE ι and the Greek
--   symbol letters ϐ ϑ ϕ ϖ ϰ ϱ ϵ fold to σ, s, μ, ṡ, ι, β θ φ π κ ρ ε, which PostgreSQL's lower()
--   leaves as they are. persistence_search_text() maps them first (translate), so that 'simple'
--   then folds them as SQLite does; SQLite's 0005 reads İ as i, as lower() does here.
--   persistence.search._fold holds the same table for the search text and the snippets.
-- - Two fields kept apart. The output's words keep weight D and the error message's get weight C:
--   a phrase is searched as the phrase in D or the phrase in C, so it never spans the end of
--   the output and the start of the error message.
-- - A cut word is left out. Each field is read whole up to 16,000 characters. A longer one is
--   read to its 16,001st character, less its trailing run of characters that are not white
--   space (space, tab, CR, LF), with the very expression SQLite's 0005 uses: the word that the
--   limit cuts is not indexed. (rtrim strips the characters that occur among the last 64
--   read, so a cut word longer than 64 characters may keep a fragment.)
--
-- Every character that is neither a letter, a digit nor a space becomes a space, as in 0002.
-- Adding the column computes it for the rows already there.

CREATE FUNCTION persistence_search_text(body text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN translate(
    regexp_replace(
        CASE WHEN length(body) > 16000
            THEN rtrim(substr(body, 1, 16001), replace(replace(replace(replace(
                substr(body, 15938, 64), ' ', ''), E'\t', ''), E'\n', ''), E'\r', ''))
            ELSE coalesce(body, '') END,
        '[^[:alnum:][:space:]]', ' ', 'g'
    ),
    E'\u00B5\u017F\u03C2\u03D0\u03D1\u03D5\u03D6\u03F0\u03F1\u03F5\u1E9B\u1FBE',  -- µ ſ ς ϐ ϑ ϕ ϖ ϰ ϱ ϵ ẛ and U+1FBE ι
    E'\u03BC\u0073\u03C3\u03B2\u03B8\u03C6\u03C0\u03BA\u03C1\u03B5\u1E61\u03B9'   -- μ s σ β θ φ π κ ρ ε ṡ ι
);

ALTER TABLE test_results DROP COLUMN search_vector;

ALTER TABLE test_results ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, persistence_search_text(output))
    || setweight(to_tsvector('simple'::regconfig, persistence_search_text(error_message)), 'C')
) STORED;

CREATE INDEX test_results_search_idx ON test_results USING gin (search_vector);
