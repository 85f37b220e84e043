-- The search index reads words as PostgreSQL's does, and as the search text is split.
--
-- A word is a run of letters, digits (decimal digits and letter numbers such as Ⅻ) and the
-- combining marks written on them. Until now `unicode61` kept other numbers (², ½, ①) and
-- private-use characters inside a word, and split a word at its marks: `नमस्ते` was indexed
-- as `नमस` and `त`, `x²` as `x²`. PostgreSQL's index (its 0012) reads `नमस्ते` whole and `x²`
-- as `x`; so does `persistence.search` when it splits the search text.
--
-- `categories` names the Unicode categories of the characters that make up words; every
-- other character separates them. The table is built again with that tokenizer, the same
-- columns and options as 0005's, and the rows with text (0009) are indexed again, with the
-- text the triggers give (0005's cut and İ). The triggers stay as 0009 left them.

DROP TABLE test_results_fts;

CREATE VIRTUAL TABLE test_results_fts USING fts5(
    output,
    error_message,
    content = '',
    tokenize = 'unicode61 remove_diacritics 0 categories ''L* Nd Nl M*'''
);

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
FROM test_results
WHERE coalesce(output, '') <> '' OR coalesce(error_message, '') <> '';
