-- A time stored on SQLite names an instant: its date and time exist, in the years 1 to 9999.
--
-- The CHECKs of 0013, 0014 and 0016 hold the history tables' and file records' times to the
-- package's form by the shape of their digits alone, so plain SQL could store a time that names
-- no instant: `2026-02-30`, `2026-13-01`, `2026-00-00`, an hour of 24, a minute or second of
-- 60, the year 0000 (which Python's datetime has not). PostgreSQL's timestamptz refuses them,
-- or stores 24:00 as the next day's midnight, an instant. The run-history questions compare
-- the stored text without reading it, so they mis-answered: a result at hour 24 counted as the
-- newest of its day, and one of 30 February fell inside a window ending 1 March;
-- `list_test_history` then refused the row on read.
--
-- Triggers now refuse such a time on every insert and every update of `test_results.created_at`,
-- `runs.started_at`, `runs.ended_at` (NULL stays allowed), `file_records.created_at`,
-- `file_records.accessed_at` and `config_entries.updated_at`. A time names an instant when
-- SQLite, reading its date and time as a Julian day number, writes them back as they were
-- written, and its year is not 0000: julianday() carries 30 February into March and 24:00 into
-- the next day, and gives NULL for a month or day of 00, a month past 12, a minute or second
-- of 60. strftime() over the text itself is no test: SQLite 3.40 gives `2026-02-30` back as
-- given. A time in another form is left to the CHECK, which names it. `config_entries`, which
-- 0013 left out and the package reads with any offset, has no CHECK of its form: there a time
-- written `YYYY-MM-DD HH:MM` or `YYYY-MM-DDTHH:MM`, to the minute or the second, is held to
-- an instant, and any other text is left to the model's read, as before.
--
-- A time already stored that names no instant has no instant the migration may choose for it:
-- the migration stops and names the column and the ids of the first 20 such rows, changing
-- nothing, to be mended and migrated again (as 0014 and 0017 do). PostgreSQL's 0018 changes
-- nothing.
--
-- A trigger costs each insert of a time about 1.5 to 2 us on SQLite 3.40: 50,000 inserts into a
-- bare table in memory took 53 ms without one and 140 ms with one (best of 15; a trigger whose
-- WHEN is 0 alone took 89 ms). Its WHEN reads the time first and its form last, so a time that
-- names an instant costs no second GLOB. `save_results` of 50,000 results in a file took 1.24
-- to 1.31 s before 0018 and 1.30 to 1.43 s after (3 runs each, loaded machine), 2 to 5 % more.

SELECT json_extract('{}', 'test_results.created_at holds a time that names no instant in the results of ids '
    || ids || ': write the instant it meant, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT r.id FROM test_results AS r
        WHERE r.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
          AND (substr(r.created_at, 1, 4) = '0000'
               OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(r.created_at, 1, 19))) IS NOT substr(r.created_at, 1, 19))
        ORDER BY r.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

SELECT json_extract('{}', 'runs.started_at holds a time that names no instant in the runs of ids '
    || ids || ': write the instant it meant, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT u.id FROM runs AS u
        WHERE u.started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
          AND (substr(u.started_at, 1, 4) = '0000'
               OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(u.started_at, 1, 19))) IS NOT substr(u.started_at, 1, 19))
        ORDER BY u.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

SELECT json_extract('{}', 'runs.ended_at holds a time that names no instant in the runs of ids '
    || ids || ': write the instant it meant, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT u.id FROM runs AS u
        WHERE u.ended_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
          AND (substr(u.ended_at, 1, 4) = '0000'
               OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(u.ended_at, 1, 19))) IS NOT substr(u.ended_at, 1, 19))
        ORDER BY u.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

SELECT json_extract('{}', 'file_records.created_at holds a time that names no instant in the records of ids '
    || ids || ': write the instant it meant, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT d.id FROM file_records AS d
        WHERE d.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
          AND (substr(d.created_at, 1, 4) = '0000'
               OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(d.created_at, 1, 19))) IS NOT substr(d.created_at, 1, 19))
        ORDER BY d.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

SELECT json_extract('{}', 'file_records.accessed_at holds a time that names no instant in the records of ids '
    || ids || ': write the instant it meant, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT d.id FROM file_records AS d
        WHERE d.accessed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
          AND (substr(d.accessed_at, 1, 4) = '0000'
               OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(d.accessed_at, 1, 19))) IS NOT substr(d.accessed_at, 1, 19))
        ORDER BY d.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

SELECT json_extract('{}', 'config_entries.updated_at holds a time that names no instant in the entries of ids '
    || ids || ': write the instant it meant, then migrate')
FROM (
    SELECT group_concat(id, ', ') AS ids FROM (
        SELECT c.id FROM config_entries AS c
        WHERE c.updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]*'
          AND (substr(c.updated_at, 1, 4) = '0000'
               OR strftime('%Y-%m-%d %H:%M', julianday(substr(c.updated_at, 1, 16))) IS NOT replace(substr(c.updated_at, 1, 16), 'T', ' ')
               OR substr(c.updated_at, 17, 3) GLOB ':[6-9][0-9]')
        ORDER BY c.id LIMIT 20
    )
)
WHERE ids IS NOT NULL;

CREATE TRIGGER test_results_created_at_instant_insert BEFORE INSERT ON test_results
WHEN (substr(new.created_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.created_at, 1, 19))) IS NOT substr(new.created_at, 1, 19))
    AND new.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'test_results.created_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER test_results_created_at_instant_update BEFORE UPDATE OF created_at ON test_results
WHEN (substr(new.created_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.created_at, 1, 19))) IS NOT substr(new.created_at, 1, 19))
    AND new.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'test_results.created_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER runs_started_at_instant_insert BEFORE INSERT ON runs
WHEN (substr(new.started_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.started_at, 1, 19))) IS NOT substr(new.started_at, 1, 19))
    AND new.started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'runs.started_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER runs_started_at_instant_update BEFORE UPDATE OF started_at ON runs
WHEN (substr(new.started_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.started_at, 1, 19))) IS NOT substr(new.started_at, 1, 19))
    AND new.started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'runs.started_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER runs_ended_at_instant_insert BEFORE INSERT ON runs
WHEN (substr(new.ended_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.ended_at, 1, 19))) IS NOT substr(new.ended_at, 1, 19))
    AND new.ended_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'runs.ended_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER runs_ended_at_instant_update BEFORE UPDATE OF ended_at ON runs
WHEN (substr(new.ended_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.ended_at, 1, 19))) IS NOT substr(new.ended_at, 1, 19))
    AND new.ended_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'runs.ended_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER file_records_created_at_instant_insert BEFORE INSERT ON file_records
WHEN (substr(new.created_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.created_at, 1, 19))) IS NOT substr(new.created_at, 1, 19))
    AND new.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'file_records.created_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER file_records_created_at_instant_update BEFORE UPDATE OF created_at ON file_records
WHEN (substr(new.created_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.created_at, 1, 19))) IS NOT substr(new.created_at, 1, 19))
    AND new.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'file_records.created_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER file_records_accessed_at_instant_insert BEFORE INSERT ON file_records
WHEN (substr(new.accessed_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.accessed_at, 1, 19))) IS NOT substr(new.accessed_at, 1, 19))
    AND new.accessed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'file_records.accessed_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER file_records_accessed_at_instant_update BEFORE UPDATE OF accessed_at ON file_records
WHEN (substr(new.accessed_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr(new.accessed_at, 1, 19))) IS NOT substr(new.accessed_at, 1, 19))
    AND new.accessed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'
BEGIN
    SELECT RAISE(ABORT, 'file_records.accessed_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER config_entries_updated_at_instant_insert BEFORE INSERT ON config_entries
WHEN (substr(new.updated_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%d %H:%M', julianday(substr(new.updated_at, 1, 16))) IS NOT replace(substr(new.updated_at, 1, 16), 'T', ' ')
      OR substr(new.updated_at, 17, 3) GLOB ':[6-9][0-9]')
    AND new.updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]*'
BEGIN
    SELECT RAISE(ABORT, 'config_entries.updated_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;

CREATE TRIGGER config_entries_updated_at_instant_update BEFORE UPDATE OF updated_at ON config_entries
WHEN (substr(new.updated_at, 1, 4) = '0000'
      OR strftime('%Y-%m-%d %H:%M', julianday(substr(new.updated_at, 1, 16))) IS NOT replace(substr(new.updated_at, 1, 16), 'T', ' ')
      OR substr(new.updated_at, 17, 3) GLOB ':[6-9][0-9]')
    AND new.updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]*'
BEGIN
    SELECT RAISE(ABORT, 'config_entries.updated_at must name an instant: a date and time that exist, in the years 1 to 9999');
END;
