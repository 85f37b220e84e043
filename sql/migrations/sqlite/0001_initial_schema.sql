-- The seed's three tables. Timestamps are UTC ISO 8601 text (declared TIMESTAMP_TEXT so the
-- driver turns them into aware datetimes), metadata is a JSON object (declared JSON_TEXT).

CREATE TABLE test_results (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    test_type         TEXT NOT NULL CHECK (test_type IN ('stress', 'tle', 'unit', 'integration')),
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'passed', 'failed', 'timeout', 'error')),
    execution_time    REAL NOT NULL DEFAULT 0 CHECK (execution_time >= 0),
    memory_usage      INTEGER NOT NULL DEFAULT 0 CHECK (memory_usage >= 0),
    test_cases_passed INTEGER NOT NULL DEFAULT 0 CHECK (test_cases_passed >= 0),
    test_cases_total  INTEGER NOT NULL DEFAULT 0 CHECK (test_cases_total >= 0),
    error_message     TEXT,
    output            TEXT,
    created_at        TIMESTAMP_TEXT NOT NULL,
    metadata          JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    CHECK (test_cases_passed <= test_cases_total)
);

CREATE INDEX test_results_created_idx ON test_results (created_at DESC, id DESC);
CREATE INDEX test_results_type_created_idx ON test_results (test_type, created_at DESC, id DESC);

CREATE TABLE config_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    section     TEXT NOT NULL CHECK (section <> ''),
    key         TEXT NOT NULL CHECK (key <> ''),
    value       TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('str', 'int', 'float', 'bool', 'list', 'dict')),
    description TEXT,
    updated_at  TIMESTAMP_TEXT NOT NULL,
    UNIQUE (section, key)
);

CREATE TABLE file_records (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    path        TEXT NOT NULL UNIQUE CHECK (path <> ''),
    size        INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    hash        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP_TEXT NOT NULL,
    accessed_at TIMESTAMP_TEXT NOT NULL,
    metadata    JSON_TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object')
);

CREATE INDEX file_records_accessed_idx ON file_records (accessed_at DESC, id DESC);
