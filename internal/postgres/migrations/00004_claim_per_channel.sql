-- +goose Up
-- Claims look for due deliveries channel by channel: a channel at its
-- in-flight limit is skipped without reading its backlog, so a claim's
-- cost no longer grows with the number of pending deliveries.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_pending ON deliveries(channel_id, next_attempt_at) WHERE status = 'pending';

-- +goose Down
DROP INDEX deliveries_pending;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
