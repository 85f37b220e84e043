-- The seed's three tables, in PostgreSQL's native types.

CREATE TABLE test_results (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    test_type         text NOT NULL CHECK (test_type IN ('stress', 'tle', 'unit', 'integration')),
    status            text NOT NULL CHECK (status IN ('pending', 'running', 'passed', 'failed', 'timeout', 'error')),
    execution_time    double precision NOT NULL DEFAULT 0 CHECK (execution_time >= 0),
    memory_usage      bigint NOT NULL DEFAULT 0 CHECK (memory_usage >= 0),
    test_cases_passed bigint NOT NULL DEFAULT 0 CHECK (test_cases_passed >= 0),
    test_cases_total  bigint NOT NULL DEFAULT 0 CHECK (test_cases_total >= 0),
    error_message     text,
    output            text,
    created_at        timestamptz NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    CHECK (test_cases_passed <= test_cases_total)
);

CREATE INDEX test_results_created_idx ON test_results (created_at DESC, id DESC);
CREATE INDEX test_results_type_created_idx ON test_results (test_type, created_at DESC, id DESC);

CREATE TABLE config_entries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    section     text NOT NULL CHECK (section <> ''),
    key         text NOT NULL CHECK (key <> ''),
    value       text NOT NULL,
    type        text NOT NULL CHECK (type IN ('str', 'int', 'float', 'bool', 'list', 'dict')),
    description text,
    updated_at  timestamptz NOT NULL,
    UNIQUE (section, key)
);

CREATE TABLE file_records (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path        text NOT NULL UNIQUE CHECK (path <> ''),
    size        bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    hash        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    accessed_at timestamptz NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE INDEX file_records_accessed_idx ON file_records (accessed_at DESC, id DESC);
