-- +goose Up
-- A delivery's first attempt is kept on its row: most deliveries succeed
-- at once, and writing the attempt with the delivery's new state saves a
-- row and its two index entries per delivery (docs/ARCHITECTURE.md).
-- Later attempts, and first attempts recorded before this migration, stay
-- in attempts.
ALTER TABLE deliveries ADD COLUMN first_attempt_id TEXT;
ALTER TABLE deliveries ADD COLUMN first_started_at INTEGER;
ALTER TABLE deliveries ADD COLUMN first_duration_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN first_status_code INTEGER;
ALTER TABLE deliveries ADD COLUMN first_response_body TEXT;
ALTER TABLE deliveries ADD COLUMN first_error_class TEXT;
ALTER TABLE deliveries ADD COLUMN first_error TEXT;
ALTER TABLE deliveries ADD COLUMN first_trigger TEXT;

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
