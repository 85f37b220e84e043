-- The search index reads words as SQLite's does, and as the search text is split.
--
-- A word is a run of letters, digits and the combining marks written on them. 0005's
-- persistence_search_text() turned every character that the C library calls neither a
-- letter, a digit nor a space into a space, combining marks among them: `नमस्ते` was indexed
-- as `नमस` and `ते`, while a search for it asked for the whole word, and found nothing.
--
-- Now it turns only ASCII punctuation and control characters into spaces, the ones that
-- would make the parser read `solve.cpp` or `a-b` as one token. The parser reads the rest:
-- it keeps letters and digits, keeps a mark (a character of no width) inside its word, and
-- splits at anything else, other numbers such as ² included, as before. SQLite's index
-- (its 0012) and `persistence.search` split words the same way.
--
-- For ASCII text the function gives what it gave; only rows holding other characters are
-- written again, so that their generated search_vector is computed by the new function.

CREATE OR REPLACE FUNCTION persistence_search_text(body text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN translate(
        regexp_replace(
            CASE WHEN length(body) > 16000
                THEN rtrim(substr(body, 1, 16001), replace(replace(replace(replace(
                    substr(body, 15938, 64), ' ', ''), E'\t', ''), E'\n', ''), E'\r', ''))
                ELSE coalesce(body, '') END,
            '[\x01-\x08\x0e-\x1f!-/:-@[-`{-~\x7f]', ' ', 'g'
        ),
        E'\u00B5\u017F\u03C2\u03D0\u03D1\u03D5\u03D6\u03F0\u03F1\u03F5\u1E9B\u1FBE',  -- µ ſ ς ϐ ϑ ϕ ϖ ϰ ϱ ϵ ẛ and U+1FBE ι
        E'\u03BC\u0073\u03C3\u03B2\u03B8\u03C6\u03C0\u03BA\u03C1\u03B5\u1E61\u03B9'   -- μ s σ β θ φ π κ ρ ε ṡ ι
    );
END
$$;

UPDATE test_results SET output = output
WHERE output ~ '[^\x01-\x7f]' OR error_message ~ '[^\x01-\x7f]';
