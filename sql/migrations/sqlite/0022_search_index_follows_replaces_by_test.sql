-- The search index follows a REPLACE that removes another result of the same run and test.
--
-- test_results_run_test_idx keeps a test once per run. `INSERT OR REPLACE` (or `REPLACE`) of a
-- result whose run and test another result has, and `UPDATE OR REPLACE` that gives a result
-- another's run and test, delete that other result without firing delete triggers (unless
-- recursive_triggers is on), as a REPLACE of an id does: its words stayed in the index, a
-- document with no row, found by its old words once plain SQL gave its id to another row.
-- 0005's BEFORE triggers keep the indexed text of the row of the same id alone. These keep
-- that of the other result of the same run and test in test_results_fts_replaced too, and the
-- AFTER triggers take out of the index each kept row that the write deleted, and forget it.
-- The package's own writes refuse such a result (ConflictError): for them, each trigger's WHEN
-- is one look-up of that index, which finds none.

CREATE TRIGGER test_results_fts_before_insert_key BEFORE INSERT ON test_results
WHEN new.run_id IS NOT NULL AND new.test_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM test_results
    WHERE run_id = new.run_id AND test_id = new.test_id AND id IS NOT new.id)
BEGIN
    INSERT OR REPLACE INTO test_results_fts_replaced (id, output, error_message)
    SELECT id, replace(CASE WHEN length(output) > 16000
            THEN rtrim(substr(output, 1, 16001), replace(replace(replace(replace(
                substr(output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(output, '') END, char(304), 'i'),
        replace(CASE WHEN length(error_message) > 16000
            THEN rtrim(substr(error_message, 1, 16001), replace(replace(replace(replace(
                substr(error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(error_message, '') END, char(304), 'i')
    FROM test_results
    WHERE run_id = new.run_id AND test_id = new.test_id AND id IS NOT new.id
      AND (coalesce(output, '') <> '' OR coalesce(error_message, '') <> '');
END;

CREATE TRIGGER test_results_fts_after_insert_key AFTER INSERT ON test_results
WHEN new.run_id IS NOT NULL AND new.test_id IS NOT NULL
    AND EXISTS (SELECT 1 FROM test_results_fts_replaced WHERE id IS NOT new.id)
BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    SELECT 'delete', r.id, r.output, r.error_message FROM test_results_fts_replaced AS r
    WHERE r.id IS NOT new.id AND NOT EXISTS (SELECT 1 FROM test_results AS t WHERE t.id = r.id);
    DELETE FROM test_results_fts_replaced
    WHERE id IS NOT new.id
      AND NOT EXISTS (SELECT 1 FROM test_results AS t WHERE t.id = test_results_fts_replaced.id);
END;

CREATE TRIGGER test_results_fts_before_update_key BEFORE UPDATE OF run_id, test_id ON test_results
WHEN new.run_id IS NOT NULL AND new.test_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM test_results
    WHERE run_id = new.run_id AND test_id = new.test_id AND id IS NOT old.id)
BEGIN
    INSERT OR REPLACE INTO test_results_fts_replaced (id, output, error_message)
    SELECT id, replace(CASE WHEN length(output) > 16000
            THEN rtrim(substr(output, 1, 16001), replace(replace(replace(replace(
                substr(output, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(output, '') END, char(304), 'i'),
        replace(CASE WHEN length(error_message) > 16000
            THEN rtrim(substr(error_message, 1, 16001), replace(replace(replace(replace(
                substr(error_message, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))
            ELSE coalesce(error_message, '') END, char(304), 'i')
    FROM test_results
    WHERE run_id = new.run_id AND test_id = new.test_id AND id IS NOT old.id
      AND (coalesce(output, '') <> '' OR coalesce(error_message, '') <> '');
END;

CREATE TRIGGER test_results_fts_after_update_key AFTER UPDATE OF run_id, test_id ON test_results
WHEN EXISTS (SELECT 1 FROM test_results_fts_replaced WHERE id IS NOT new.id)
BEGIN
    INSERT INTO test_results_fts (test_results_fts, rowid, output, error_message)
    SELECT 'delete', r.id, r.output, r.error_message FROM test_results_fts_replaced AS r
    WHERE r.id IS NOT new.id AND NOT EXISTS (SELECT 1 FROM test_results AS t WHERE t.id = r.id);
    DELETE FROM test_results_fts_replaced
    WHERE id IS NOT new.id
      AND NOT EXISTS (SELECT 1 FROM test_results AS t WHERE t.id = test_results_fts_replaced.id);
END;
