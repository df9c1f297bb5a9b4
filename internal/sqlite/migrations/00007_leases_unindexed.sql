-- +goose Up
-- A lease no longer enters an index: with one process, the dispatcher
-- counts what is in flight itself and a claim skips leased rows as it
-- reads them, so deliveries_leased served only the count without the
-- dispatcher and the release at start-up, and in a burst its entries,
-- made at every claim and dropped at every result, were a tenth of the
-- log's page writes (docs/benchmarks-log.md). Automatic leases are only
-- ever on pending deliveries (deliveries_pending finds them); a manual
-- attempt's, on any delivery, enters deliveries_manual while it lasts.
DROP INDEX deliveries_leased;
CREATE INDEX deliveries_manual ON deliveries(channel_id) WHERE manual = 1 AND lease_until IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_manual;
CREATE INDEX deliveries_leased ON deliveries(channel_id, lease_until) WHERE lease_until IS NOT NULL;
