-- +goose Up
-- A delivery's entry in deliveries_channel no longer holds its status, so
-- a result leaves the entry where it is instead of moving it from the
-- channel's pending run to its succeeded run: in a burst that move was a
-- quarter of all the log's page writes (docs/benchmarks-log.md). Pending
-- deliveries are found through deliveries_pending; failed ones, which
-- recovery looks for, through deliveries_failed, which only failures
-- enter.
DROP INDEX deliveries_channel;
CREATE INDEX deliveries_channel ON deliveries(channel_id, created_at);
CREATE INDEX deliveries_failed ON deliveries(channel_id, created_at) WHERE status = 'failed';

-- +goose Down
DROP INDEX deliveries_failed;
DROP INDEX deliveries_channel;
CREATE INDEX deliveries_channel ON deliveries(channel_id, status, created_at);
