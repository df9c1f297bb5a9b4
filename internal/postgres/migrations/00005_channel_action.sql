-- +goose Up
-- An action channel's request template (method, headers, body, secrets,
-- preset) as JSON text; empty for other kinds. Kept as text, like the
-- other JSON columns of channels, so it reads back exactly as written.
ALTER TABLE channels ADD COLUMN action text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE channels DROP COLUMN action;
