-- +goose Up
-- A delivery's first attempt is kept on its row, as in SQLite: most
-- deliveries succeed at once, and the result already writes a new version
-- of the delivery's row, so a row of its own in attempts, with its two
-- index entries, was work for nothing (docs/benchmarks-log.md). Later
-- attempts, and first attempts recorded before this migration, stay in
-- attempts.
ALTER TABLE deliveries ADD COLUMN first_attempt_id text COLLATE "C";
ALTER TABLE deliveries ADD COLUMN first_started_at timestamptz;
ALTER TABLE deliveries ADD COLUMN first_duration_ms bigint;
ALTER TABLE deliveries ADD COLUMN first_status_code integer;
ALTER TABLE deliveries ADD COLUMN first_response_body text;
ALTER TABLE deliveries ADD COLUMN first_error_class text;
ALTER TABLE deliveries ADD COLUMN first_error text;
ALTER TABLE deliveries ADD COLUMN first_trigger text;

-- +goose Down
-- Moving the first attempts back into attempts keeps the log whole.
INSERT INTO attempts(id, delivery_id, tenant_id, number, started_at, duration_ms, status_code, response_body, error_class, error, trigger)
SELECT first_attempt_id, id, tenant_id, 1, first_started_at, first_duration_ms, first_status_code, first_response_body,
       first_error_class, first_error, first_trigger
FROM deliveries WHERE first_attempt_id IS NOT NULL;
ALTER TABLE deliveries DROP COLUMN first_attempt_id;
ALTER TABLE deliveries DROP COLUMN first_started_at;
ALTER TABLE deliveries DROP COLUMN first_duration_ms;
ALTER TABLE deliveries DROP COLUMN first_status_code;
ALTER TABLE deliveries DROP COLUMN first_response_body;
ALTER TABLE deliveries DROP COLUMN first_error_class;
ALTER TABLE deliveries DROP COLUMN first_error;
ALTER TABLE deliveries DROP COLUMN first_trigger;
