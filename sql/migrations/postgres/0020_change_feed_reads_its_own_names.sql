-- The change trigger's function names what it calls by the catalog alone.
--
-- persistence_notify_change() ran with the search path of the session that wrote: a writer
-- whose path put a schema of its own before pg_catalog (`SET search_path = mine, pg_catalog`)
-- with a `pg_notify(text, text)` there that does nothing, had its writes committed with no
-- notification, and every cache served the old values for good. The function now runs with
-- pg_catalog alone on its path (pg_temp last, so that no temporary object is found first);
-- it runs once a statement, so the setting costs a write nothing to speak of.

ALTER FUNCTION persistence_notify_change() SET search_path = pg_catalog, pg_temp;
