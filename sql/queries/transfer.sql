-- name: CopyReadRuns :many
-- What `copy` and `backup` read of runs: one page in id order, from the id given.
SELECT id, started_at, ended_at, labels FROM runs
WHERE id >= @from_id
ORDER BY id
LIMIT @page_size;

-- name: CopyWriteRuns :copyfrom
-- What `copy` and `restore` write to runs: rows with the ids they had.
INSERT INTO runs (id, started_at, ended_at, labels)
VALUES (@id, @started_at, @ended_at, @labels);

-- name: CopyReadTestResults :many
-- What `copy` and `backup` read of test_results: one page in id order, from the id given.
SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed,
       test_cases_total, error_message, output, created_at, metadata, run_id, test_id
FROM test_results
WHERE id >= @from_id
ORDER BY id
LIMIT @page_size;

-- name: CopyWriteTestResults :copyfrom
-- What `copy` and `restore` write to test_results: rows with the ids they had. The search
-- index fills itself: FTS5's triggers on SQLite, the generated search_vector on PostgreSQL.
INSERT INTO test_results (
    id, test_type, status, execution_time, memory_usage, test_cases_passed,
    test_cases_total, error_message, output, created_at, metadata, run_id, test_id
) VALUES (
    @id, @test_type, @status, @execution_time, @memory_usage, @test_cases_passed,
    @test_cases_total, @error_message, @output, @created_at, @metadata, @run_id, @test_id
);

-- name: CopyReadResultArtifacts :many
-- What `copy` and `backup` read of result_artifacts: one page in key order, after the key given.
-- The table has no id: its key is (result_id, role), and the range on result_id reads its index.
SELECT result_id, role, sha256, size FROM result_artifacts
WHERE result_id >= @after_result_id AND (result_id > @after_result_id OR role > @after_role)
ORDER BY result_id, role
LIMIT @page_size;

-- name: CopyWriteResultArtifacts :copyfrom
-- What `copy` and `restore` write to result_artifacts: each result's links to its kept files.
INSERT INTO result_artifacts (result_id, role, sha256, size)
VALUES (@result_id, @role, @sha256, @size);

-- name: CopyReadConfigEntries :many
-- What `copy` and `backup` read of config_entries: one page in id order, from the id given.
SELECT id, section, key, value, type, description, updated_at FROM config_entries
WHERE id >= @from_id
ORDER BY id
LIMIT @page_size;

-- name: CopyWriteConfigEntries :copyfrom
-- What `copy` and `restore` write to config_entries: rows with the ids they had.
INSERT INTO config_entries (id, section, key, value, type, description, updated_at)
VALUES (@id, @section, @key, @value, @type, @description, @updated_at);

-- name: CopyReadFileRecords :many
-- What `copy` and `backup` read of file_records: one page in id order, from the id given.
SELECT id, path, size, hash, created_at, accessed_at, metadata FROM file_records
WHERE id >= @from_id
ORDER BY id
LIMIT @page_size;

-- name: CopyWriteFileRecords :copyfrom
-- What `copy` and `restore` write to file_records: rows with the ids they had.
INSERT INTO file_records (id, path, size, hash, created_at, accessed_at, metadata)
VALUES (@id, @path, @size, @hash, @created_at, @accessed_at, @metadata);

-- name: CopyTableSizes :one
-- How many rows each table that `copy` moves holds: a copy's target must hold none.
SELECT (SELECT count(*) FROM runs) AS runs,
       (SELECT count(*) FROM test_results) AS test_results,
       (SELECT count(*) FROM result_artifacts) AS result_artifacts,
       (SELECT count(*) FROM config_entries) AS config_entries,
       (SELECT count(*) FROM file_records) AS file_records;
