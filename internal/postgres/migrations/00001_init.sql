-- +goose Up
-- IDs sort by creation time as bytes; COLLATE "C" keeps that order whatever
-- the database's locale.
CREATE TABLE settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE tenants (
    id         text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id         text COLLATE "C" PRIMARY KEY,
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants(id),
    prefix     text NOT NULL,
    hash       bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE event_types (
    tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants(id),
    name        text COLLATE "C" NOT NULL,
    grp         text NOT NULL,
    title       text NOT NULL,
    description text NOT NULL,
    schema      text,
    example     text,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE event_toggles (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants(id),
    name      text COLLATE "C" NOT NULL,
    enabled   boolean NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE channels (
    id                 text COLLATE "C" PRIMARY KEY,
    tenant_id          text COLLATE "C" NOT NULL REFERENCES tenants(id),
    kind               text NOT NULL,
    name               text NOT NULL,
    url                text NOT NULL,
    headers            text NOT NULL,
    policy             text NOT NULL,
    timeout_s          integer NOT NULL,
    enabled            boolean NOT NULL,
    disabled_reason    text NOT NULL,
    max_in_flight      integer NOT NULL,
    rate_limit_per_sec double precision NOT NULL,
    secrets            text NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX channels_tenant ON channels(tenant_id, id);

CREATE TABLE subscriptions (
    id          text COLLATE "C" PRIMARY KEY,
    tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants(id),
    channel_id  text COLLATE "C" NOT NULL REFERENCES channels(id),
    event_types text NOT NULL,
    sources     text NOT NULL,
    filter      text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions(tenant_id, id);
CREATE INDEX subscriptions_channel ON subscriptions(channel_id);

-- data is kept as the exact bytes published (compacted), not as jsonb,
-- so what is delivered is what was sent.
CREATE TABLE events (
    id              text COLLATE "C" PRIMARY KEY,
    tenant_id       text COLLATE "C" NOT NULL REFERENCES tenants(id),
    type            text COLLATE "C" NOT NULL,
    source          text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    data            bytea NOT NULL,
    idempotency_key text NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX events_tenant ON events(tenant_id, id);
CREATE INDEX events_tenant_type ON events(tenant_id, type, id);

CREATE TABLE idempotency_keys (
    tenant_id    text COLLATE "C" NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    event_id     text COLLATE "C" NOT NULL,
    deliveries   integer NOT NULL,
    suppressed   boolean NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE deliveries (
    id              text COLLATE "C" PRIMARY KEY,
    tenant_id       text COLLATE "C" NOT NULL,
    event_id        text COLLATE "C" NOT NULL,
    event_type      text COLLATE "C" NOT NULL,
    channel_id      text COLLATE "C" NOT NULL,
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    retry_base      integer NOT NULL DEFAULT 0,
    manual          boolean NOT NULL DEFAULT false,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    last_error      text NOT NULL DEFAULT '',
    last_status     integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries(channel_id, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, id);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_channel ON deliveries(channel_id, status, created_at);

CREATE TABLE attempts (
    id            text COLLATE "C" PRIMARY KEY,
    delivery_id   text COLLATE "C" NOT NULL,
    tenant_id     text COLLATE "C" NOT NULL,
    number        integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   bigint NOT NULL,
    status_code   integer NOT NULL,
    response_body text NOT NULL,
    error_class   text NOT NULL,
    error         text NOT NULL,
    trigger       text NOT NULL
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
