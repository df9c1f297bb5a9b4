-- +goose Up
-- The next moment a rate-limited channel may be sent to; claims hand out
-- send times from it under the channel's row lock, so the limit holds
-- across every process.
ALTER TABLE channels ADD COLUMN rate_next_at timestamptz;

-- +goose Down
ALTER TABLE channels DROP COLUMN rate_next_at;
