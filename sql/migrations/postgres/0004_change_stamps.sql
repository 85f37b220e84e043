-- Send a stamp with each change notification: `<table> <transaction id>`, unique to the
-- committing transaction. Every listening cache takes the last one it received as the
-- table's stamp, so caches in different processes agree on the name of a table's state and
-- can share entries under it (the Redis cache keys its entries by it). One transaction's
-- notifications for one table are still folded into one.
--
-- ENABLE ALWAYS: the triggers fire under `session_replication_role = replica` too, so a
-- write made that way is not hidden from the caches.

CREATE OR REPLACE FUNCTION persistence_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('persistence_changes', TG_TABLE_NAME || ' ' || pg_current_xact_id()::text);
    RETURN NULL;
END
$$;

ALTER TABLE test_results ENABLE ALWAYS TRIGGER test_results_notify_change;
ALTER TABLE config_entries ENABLE ALWAYS TRIGGER config_entries_notify_change;
ALTER TABLE file_records ENABLE ALWAYS TRIGGER file_records_notify_change;
