-- A test result's `execution_time` is finite and at most 1e12 seconds (MAX_EXECUTION_TIME).
--
-- The model refuses any other time, but plain SQL could store `'NaN'` and `'Infinity'`, which
-- pass `CHECK (execution_time >= 0)` since PostgreSQL sorts NaN above every number, and
-- `1e300`; `slowest_tests`, `duration_figures` and `result_stats`, computed here, then gave
-- nan or inf, and the CLI's test-history stopped on it. A CHECK,
-- `test_results_execution_time_finite_up_to_1e12` (`execution_time <= 1e12`), now refuses
-- all three: NaN and Infinity are above 1e12 here too.
-- A time stored out of that range before it stops the migration, naming table, column and
-- the first 20 such rows, and changes nothing. This CHECK was added to 0016 before any
-- release, next to SQLite's, whose 0016 rebuilds the table for its CHECKs of the stored type.
--
-- It costs one comparison: copying 10,000 rows into a bare table of one double precision
-- column took 3.45 ms with it and 3.28 ms without (best of 31), about 17 ns a row; into
-- test_results, with its indexes and search column, 116.3 and 115.7 ms (best of 15).
--
-- The integer columns are bigint, whose range is the model's (0 to MAX_INT, 2**63 - 1, with
-- the `>= 0` CHECKs), and text or a bytea is refused by the columns' types: nothing else to
-- add. SQLite's 0016 adds CHECKs of the stored type, which its type affinity needs.
--
-- The table is locked against writes before the check, so that a row committed by another
-- writer while the migration waited for the table is checked and named too; the check read
-- it unlocked before, and such a row failed the constraint with the server's "violated by
-- some row", naming none. Readers go on until the constraint's own lock.

LOCK TABLE test_results IN SHARE ROW EXCLUSIVE MODE;

DO $$
DECLARE
    found text;
BEGIN
    SELECT string_agg(id::text, ', ' ORDER BY id) INTO found FROM (
        SELECT id FROM test_results
        WHERE NOT execution_time <= 1e12 ORDER BY id LIMIT 20
    ) AS named;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'test_results.execution_time holds a time that is not finite or is above 1e12 seconds in the results of ids %: write a time from 0 to 1e12 seconds there, then migrate', found;
    END IF;
END
$$;

ALTER TABLE test_results ADD CONSTRAINT test_results_execution_time_finite_up_to_1e12
    CHECK (execution_time <= 1e12);
