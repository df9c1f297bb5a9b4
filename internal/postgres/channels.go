package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

const channelCols = `id, tenant_id, kind, name, url, headers, policy, timeout_s, enabled, disabled_reason,
	max_in_flight, rate_limit_per_sec, secrets, created_at, updated_at, action`

func scanChannel(r pgx.Row) (*herald.Channel, error) {
	var c herald.Channel
	var headers, policy, secrets, action string
	if err := r.Scan(&c.ID, &c.TenantID, &c.Kind, &c.Name, &c.URL, &headers, &policy, &c.TimeoutS, &c.Enabled,
		&c.DisabledReason, &c.MaxInFlight, &c.RateLimitPerSec, &secrets, &c.CreatedAt, &c.UpdatedAt, &action); err != nil {
		return nil, err
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	if err := json.Unmarshal([]byte(headers), &c.Headers); err != nil {
		return nil, fmt.Errorf("channel %s headers: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(policy), &c.Policy); err != nil {
		return nil, fmt.Errorf("channel %s policy: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(secrets), &c.Secrets); err != nil {
		return nil, fmt.Errorf("channel %s secrets: %w", c.ID, err)
	}
	var err error
	if c.Action, err = herald.DecodeAction(action); err != nil {
		return nil, fmt.Errorf("channel %s action: %w", c.ID, err)
	}
	return &c, nil
}

// channelJSON encodes a channel's JSON columns: headers, policy, secrets,
// action.
func channelJSON(c *herald.Channel) (string, string, string, string, error) {
	headers := "{}"
	if c.Headers != nil {
		b, err := json.Marshal(c.Headers)
		if err != nil {
			return "", "", "", "", err
		}
		headers = string(b)
	}
	policy, err := json.Marshal(c.Policy)
	if err != nil {
		return "", "", "", "", err
	}
	secrets, err := json.Marshal(c.Secrets)
	if err != nil {
		return "", "", "", "", err
	}
	action, err := herald.EncodeAction(c.Action)
	if err != nil {
		return "", "", "", "", err
	}
	return headers, string(policy), string(secrets), action, nil
}

// CreateChannel stores a new channel.
func (s *Store) CreateChannel(ctx context.Context, c *herald.Channel) error {
	return s.configTx(ctx, func(tx pgx.Tx) error { return insertChannel(ctx, tx, c) })
}

// insertChannel stores a channel; CreateChannel and
// CreateChannelWithSubscription share it.
func insertChannel(ctx context.Context, tx pgx.Tx, c *herald.Channel) error {
	headers, policy, secrets, action, err := channelJSON(c)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO channels(`+channelCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)`,
		c.ID, c.TenantID, c.Kind, c.Name, c.URL, headers, policy, c.TimeoutS, c.Enabled, c.DisabledReason, c.MaxInFlight,
		c.RateLimitPerSec, secrets, c.CreatedAt, c.UpdatedAt, action)
	return err
}

// CreateChannelWithSubscription stores a channel and one subscription to
// it in one transaction.
func (s *Store) CreateChannelWithSubscription(ctx context.Context, c *herald.Channel, sub *herald.Subscription) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		if err := insertChannel(ctx, tx, c); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO subscriptions(`+subCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, sub.ID, sub.TenantID,
			sub.ChannelID, jsonList(sub.EventTypes), jsonList(sub.Sources), sub.Filter, sub.CreatedAt, sub.UpdatedAt)
		return err
	})
}

// GetChannel finds a tenant's channel.
func (s *Store) GetChannel(ctx context.Context, tenantID, id string) (*herald.Channel, error) {
	c, err := scanChannel(s.pool.QueryRow(ctx, `SELECT `+channelCols+` FROM channels WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	return c, mapErr(err)
}

// ListChannels lists a tenant's channels, newest first.
func (s *Store) ListChannels(ctx context.Context, tenantID string, p herald.Page) ([]herald.Channel, error) {
	q := newQuery(`SELECT `+channelCols+` FROM channels WHERE tenant_id = $1`, tenantID)
	q.page(p)
	return s.listChannels(ctx, q)
}

// ListChannelsOfKind lists a tenant's channels of one kind, newest first.
func (s *Store) ListChannelsOfKind(ctx context.Context, tenantID, kind string, p herald.Page) ([]herald.Channel, error) {
	q := newQuery(`SELECT `+channelCols+` FROM channels WHERE tenant_id = $1`, tenantID)
	q.and(`kind = ?`, kind)
	q.page(p)
	return s.listChannels(ctx, q)
}

func (s *Store) listChannels(ctx context.Context, q *query) ([]herald.Channel, error) {
	rows, err := s.pool.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.Channel, error) {
		c, err := scanChannel(r)
		if err != nil {
			return herald.Channel{}, err
		}
		return *c, nil
	})
	return out, mapErr(err)
}

// UpdateChannel writes a channel's mutable fields; disabling it fails its
// pending deliveries.
func (s *Store) UpdateChannel(ctx context.Context, c *herald.Channel) error {
	headers, policy, secrets, action, err := channelJSON(c)
	if err != nil {
		return err
	}
	return s.configTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE channels SET name = $1, url = $2, headers = $3, policy = $4, timeout_s = $5, enabled = $6,
			disabled_reason = $7, max_in_flight = $8, rate_limit_per_sec = $9, secrets = $10, updated_at = $11, action = $14
			WHERE tenant_id = $12 AND id = $13`,
			c.Name, c.URL, headers, policy, c.TimeoutS, c.Enabled, c.DisabledReason, c.MaxInFlight, c.RateLimitPerSec, secrets,
			c.UpdatedAt, c.TenantID, c.ID, action)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return herald.ErrNotFound
		}
		if !c.Enabled {
			return failPending(ctx, tx, c.ID, "channel disabled: "+c.DisabledReason, c.UpdatedAt)
		}
		return nil
	})
}

// failPending ends every pending delivery of a channel that is not in
// flight. It runs holding the channel's lock, so it never waits for a
// delivery row: locked rows are skipped. (A claim locks a channel before its
// deliveries, so it holds none of this channel's rows now; when claims
// locked deliveries first, waiting here deadlocked.) A skipped row that
// stays pending is claimed with the channel disabled or gone, and the
// dispatcher fails it.
func failPending(ctx context.Context, tx pgx.Tx, channelID, reason string, at time.Time) error {
	_, err := tx.Exec(ctx, failPendingSQL, reason, at, channelID)
	return err
}

const failPendingSQL = `UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $1, updated_at = $2
	WHERE id IN (SELECT id FROM deliveries WHERE channel_id = $3 AND status = 'pending' AND lease_until IS NULL
		FOR UPDATE SKIP LOCKED)`

// DeleteChannel removes a channel and its subscriptions and fails its
// pending deliveries.
func (s *Store) DeleteChannel(ctx context.Context, tenantID, id string, at time.Time) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM subscriptions WHERE tenant_id = $1 AND channel_id = $2`, tenantID, id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM channels WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return herald.ErrNotFound
		}
		return failPending(ctx, tx, id, "channel deleted", at)
	})
}

const subCols = `id, tenant_id, channel_id, event_types, sources, filter, created_at, updated_at`

func scanSub(r pgx.Row) (herald.Subscription, error) {
	var sub herald.Subscription
	var types, sources string
	if err := r.Scan(&sub.ID, &sub.TenantID, &sub.ChannelID, &types, &sources, &sub.Filter, &sub.CreatedAt, &sub.UpdatedAt); err != nil {
		return sub, err
	}
	sub.CreatedAt, sub.UpdatedAt = sub.CreatedAt.UTC(), sub.UpdatedAt.UTC()
	if err := json.Unmarshal([]byte(types), &sub.EventTypes); err != nil {
		return sub, err
	}
	return sub, json.Unmarshal([]byte(sources), &sub.Sources)
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func channelExists(ctx context.Context, tx pgx.Tx, tenantID, id string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM channels WHERE tenant_id = $1 AND id = $2`, tenantID, id).Scan(&one)
	if err == pgx.ErrNoRows {
		return herald.Invalid("channel_id", "no channel %q in this tenant; create it first with POST /v1/tenants/%s/channels", id, tenantID)
	}
	return err
}

// CreateSubscription stores a subscription; its channel must exist.
func (s *Store) CreateSubscription(ctx context.Context, sub *herald.Subscription) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		if err := channelExists(ctx, tx, sub.TenantID, sub.ChannelID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO subscriptions(`+subCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, sub.ID, sub.TenantID,
			sub.ChannelID, jsonList(sub.EventTypes), jsonList(sub.Sources), sub.Filter, sub.CreatedAt, sub.UpdatedAt)
		return err
	})
}

// GetSubscription finds a subscription.
func (s *Store) GetSubscription(ctx context.Context, tenantID, id string) (*herald.Subscription, error) {
	sub, err := scanSub(s.pool.QueryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr(err)
	}
	return &sub, nil
}

// ListSubscriptions lists subscriptions, newest first.
func (s *Store) ListSubscriptions(ctx context.Context, tenantID string, f herald.SubscriptionFilter, p herald.Page) ([]herald.Subscription, error) {
	q := newQuery(`SELECT `+subCols+` FROM subscriptions WHERE tenant_id = $1`, tenantID)
	if f.ChannelID != "" {
		q.and("channel_id = ?", f.ChannelID)
	}
	q.page(p)
	return s.querySubs(ctx, q.sql.String(), q.args...)
}

func (s *Store) querySubs(ctx context.Context, sql string, args ...any) ([]herald.Subscription, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.Subscription, error) { return scanSub(r) })
	return out, mapErr(err)
}

// UpdateSubscription writes a subscription's mutable fields.
func (s *Store) UpdateSubscription(ctx context.Context, sub *herald.Subscription) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		if err := channelExists(ctx, tx, sub.TenantID, sub.ChannelID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE subscriptions SET channel_id = $1, event_types = $2, sources = $3, filter = $4, updated_at = $5
			WHERE tenant_id = $6 AND id = $7`, sub.ChannelID, jsonList(sub.EventTypes), jsonList(sub.Sources), sub.Filter,
			sub.UpdatedAt, sub.TenantID, sub.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return herald.ErrNotFound
		}
		return nil
	})
}

// DeleteSubscription removes a subscription.
func (s *Store) DeleteSubscription(ctx context.Context, tenantID, id string) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM subscriptions WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err == nil && tag.RowsAffected() == 0 {
			return herald.ErrNotFound
		}
		return err
	})
}

// Routes reads a tenant's routing table.
func (s *Store) Routes(ctx context.Context, tenantID string) (*herald.Routes, error) {
	subs, err := s.querySubs(ctx, `SELECT s.id, s.tenant_id, s.channel_id, s.event_types, s.sources, s.filter, s.created_at, s.updated_at
		FROM subscriptions s JOIN channels c ON c.id = s.channel_id
		WHERE s.tenant_id = $1 AND c.enabled ORDER BY s.id`, tenantID)
	if err != nil {
		return nil, err
	}
	disabled, err := disabledTypes(ctx, s.pool, tenantID)
	if err != nil {
		return nil, err
	}
	r := &herald.Routes{Subscriptions: subs, DisabledTypes: make(map[string]bool, len(disabled))}
	for _, n := range disabled {
		r.DisabledTypes[n] = true
	}
	return r, nil
}
