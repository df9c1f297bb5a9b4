-- +goose Up
-- An action channel's request template (method, headers, body, secrets,
-- preset) as JSON; empty for other kinds.
ALTER TABLE channels ADD COLUMN action TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE channels DROP COLUMN action;
