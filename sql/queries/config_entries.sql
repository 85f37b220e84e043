-- name: GetConfigEntry :one
-- One config entry by id.
SELECT * FROM config_entries WHERE id = @id;

-- name: GetConfigEntryByKey :one
-- One config entry by its section and key.
SELECT * FROM config_entries WHERE section = @section AND key = @key;

-- name: ListConfigEntriesPage :many
-- Config entries by section then key, with a section in [section_from, section_until]; one
-- keyset page after the (cursor_section, cursor_key) cursor. The (section, key) index drives it.
SELECT * FROM config_entries
WHERE section >= @section_from AND section <= @section_until
  AND section >= @cursor_section AND (section > @cursor_section OR key > @cursor_key)
ORDER BY section, key
LIMIT @page_size;

-- name: UpsertConfigEntry :one
-- Insert an entry, or replace the value, type and description of the one with the same section and key.
-- params: typed
INSERT INTO config_entries (section, key, value, type, description, updated_at)
VALUES (@section, @key, @value, @type, @description, @updated_at)
ON CONFLICT (section, key) DO UPDATE SET
    value = excluded.value, type = excluded.type,
    description = excluded.description, updated_at = excluded.updated_at
RETURNING *;

-- name: UpdateConfigEntry :execrows
-- Overwrite every field of an existing entry, found by id.
UPDATE config_entries SET
    section = @section, key = @key, value = @value, type = @type,
    description = @description, updated_at = @updated_at
WHERE id = @id;

-- name: DeleteConfigEntry :execrows
-- Delete one config entry by id.
DELETE FROM config_entries WHERE id = @id;
