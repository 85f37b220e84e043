-- A test result's `execution_time` is never -0.0.
--
-- double precision keeps the sign of zero. The model has turned -0.0 into 0.0 since it read
-- the sign, but a time written as -0.0 before then, or by plain SQL
-- (`UPDATE test_results SET execution_time = '-0'`), passes `CHECK (execution_time >= 0)` and
-- stayed -0.0: `duration_figures`, `slowest_tests` and `compare_runs`, computed here, gave
-- `-0.0`, and the CLI showed `-0.000s`. SQLite stores -0.0 in a REAL column as 0.0, and its
-- 0015 changes nothing. `execution_time` is the only float column of the schema.
--
-- Such a time is now 0.0, and a CHECK refuses -0.0 from then on, by a name that says why. -0.0
-- equals 0, so only a time equal to 0 is written out as text to tell its sign: a time above 0
-- costs one comparison. Copying 10,000 results took as long with this CHECK as without it
-- (20.8 and 20.9 ms); a BEFORE trigger that rewrites -0.0, even one called only for a time of
-- 0 (`WHEN`), took 24.2 ms, and one called for every row 32.1 ms.
--
-- The table is locked against writes before the rewrite, so that a -0.0 committed by another
-- writer while the migration waited for the table is rewritten too; the rewrite missed it
-- before, and the CHECK then failed the migration with "violated by some row". This lock was
-- added before any release. Readers go on until the constraint's own lock.

LOCK TABLE test_results IN SHARE ROW EXCLUSIVE MODE;

UPDATE test_results SET execution_time = 0
WHERE execution_time = 0 AND execution_time::text = '-0';

ALTER TABLE test_results ADD CONSTRAINT test_results_execution_time_not_negative_zero
    CHECK (execution_time <> 0 OR execution_time::text = '0');
