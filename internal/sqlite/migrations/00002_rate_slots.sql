-- +goose Up
-- The next moment a rate-limited channel may be sent to; claims hand out
-- send times from it, so the limit holds however many deliveries are
-- claimed at once.
ALTER TABLE channels ADD COLUMN rate_next_at INTEGER;

-- +goose Down
ALTER TABLE channels DROP COLUMN rate_next_at;
