-- +goose Up
-- Times are Unix nanoseconds (UTC). JSON columns hold compact JSON text.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    prefix     TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE event_types (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    grp         TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    schema      TEXT,
    example     TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE event_toggles (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name      TEXT NOT NULL,
    enabled   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE channels (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    kind               TEXT NOT NULL,
    name               TEXT NOT NULL,
    url                TEXT NOT NULL,
    headers            TEXT NOT NULL,
    policy             TEXT NOT NULL,
    timeout_s          INTEGER NOT NULL,
    enabled            INTEGER NOT NULL,
    disabled_reason    TEXT NOT NULL,
    max_in_flight      INTEGER NOT NULL,
    rate_limit_per_sec REAL NOT NULL,
    secrets            TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX channels_tenant ON channels(tenant_id, id);

CREATE TABLE subscriptions (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    channel_id  TEXT NOT NULL REFERENCES channels(id),
    event_types TEXT NOT NULL,
    sources     TEXT NOT NULL,
    filter      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions(tenant_id, id);
CREATE INDEX subscriptions_channel ON subscriptions(channel_id);

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    type            TEXT NOT NULL,
    source          TEXT NOT NULL,
    occurred_at     INTEGER NOT NULL,
    data            BLOB NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_tenant ON events(tenant_id, id);
CREATE INDEX events_tenant_type ON events(tenant_id, type, id);

CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    event_id     TEXT NOT NULL,
    deliveries   INTEGER NOT NULL,
    suppressed   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- A delivery is in flight while lease_until is set and in the future; a
-- lease left by a crashed process expires and the delivery is due again.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    channel_id      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    retry_base      INTEGER NOT NULL DEFAULT 0,
    manual          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_until     INTEGER,
    last_error      TEXT NOT NULL DEFAULT '',
    last_status     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries(channel_id, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, id);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_channel ON deliveries(channel_id, status, created_at);

CREATE TABLE attempts (
    id            TEXT PRIMARY KEY,
    delivery_id   TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    number        INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status_code   INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    error_class   TEXT NOT NULL,
    error         TEXT NOT NULL,
    trigger       TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, number);

-- +goose Down
DROP TABLE attempts;
DROP TABLE deliveries;
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP TABLE subscriptions;
DROP TABLE channels;
DROP TABLE event_toggles;
DROP TABLE event_types;
DROP TABLE api_keys;
DROP TABLE tenants;
DROP TABLE settings;
