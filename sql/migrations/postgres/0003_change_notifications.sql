-- Tell listening caches which table changed: one NOTIFY per statement, sent at commit.
-- PostgreSQL folds identical notifications of one transaction into one, so a batch of any
-- size sends its table's name once. Nothing is sent for a transaction that rolls back.

CREATE FUNCTION persistence_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('persistence_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER test_results_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON test_results
    FOR EACH STATEMENT EXECUTE FUNCTION persistence_notify_change();

CREATE TRIGGER config_entries_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON config_entries
    FOR EACH STATEMENT EXECUTE FUNCTION persistence_notify_change();

CREATE TRIGGER file_records_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON file_records
    FOR EACH STATEMENT EXECUTE FUNCTION persistence_notify_change();
