-- A config entry's section and key, and a file record's path, are at most 1,024 bytes
-- (MAX_KEY_BYTES), as the models hold them.
--
-- The listings' unset upper end of a section or a path is a text that sorts after every one
-- the models hold: 257 times U+10FFFF, 1,028 bytes. PostgreSQL has no text after every other
-- (a longer one that begins with it sorts after it), and plain SQL could store one:
-- `all_config_entries`, `list_config_entries` and `list_file_records` passed over it without
-- a word, where every other listing refuses such a row, naming it. The CHECKs
-- `config_entries_keys_within_1024_bytes` and `file_records_path_within_1024_bytes` now
-- refuse it when it is written, so that every stored section and path lies before that end.
-- SQLite needs none: its unset end is a blob, which sorts after every text.
--
-- One already stored stops the migration, naming the table, column and the first 20 such
-- rows, and changes nothing, as 0016 does. Each table is locked against writes before its
-- check, so that a row committed while the migration waited is named too.

LOCK TABLE config_entries IN SHARE ROW EXCLUSIVE MODE;
LOCK TABLE file_records IN SHARE ROW EXCLUSIVE MODE;

DO $$
DECLARE
    found text;
BEGIN
    SELECT string_agg(id::text, ', ' ORDER BY id) INTO found FROM (
        SELECT id FROM config_entries
        WHERE octet_length(section) > 1024 OR octet_length(key) > 1024 ORDER BY id LIMIT 20
    ) AS named;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'config_entries.section or key is over 1024 bytes in the entries of ids %: shorten or delete them, then migrate', found;
    END IF;
    SELECT string_agg(id::text, ', ' ORDER BY id) INTO found FROM (
        SELECT id FROM file_records WHERE octet_length(path) > 1024 ORDER BY id LIMIT 20
    ) AS named;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'file_records.path is over 1024 bytes in the records of ids %: shorten or delete them, then migrate', found;
    END IF;
END
$$;

ALTER TABLE config_entries ADD CONSTRAINT config_entries_keys_within_1024_bytes
    CHECK (octet_length(section) <= 1024 AND octet_length(key) <= 1024);
ALTER TABLE file_records ADD CONSTRAINT file_records_path_within_1024_bytes
    CHECK (octet_length(path) <= 1024);
