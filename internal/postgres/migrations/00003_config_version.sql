-- +goose Up
-- One counter that every configuration change (tenants, keys, types,
-- toggles, channels, subscriptions) moves in its own transaction, so each
-- process can cache what publishing and authentication read, and check
-- with one row read that its cache is current.
CREATE TABLE config_version (
    id      integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

-- +goose Down
DROP TABLE config_version;
