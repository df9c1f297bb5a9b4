package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldhq/herald"
)

const channelCols = `id, tenant_id, kind, name, url, headers, policy, timeout_s, enabled, disabled_reason,
	max_in_flight, rate_limit_per_sec, secrets, created_at, updated_at, action`

type scanner interface{ Scan(dest ...any) error }

func scanChannel(sc scanner) (*herald.Channel, error) {
	var c herald.Channel
	var headers, policy, secrets string
	var enabled int
	var created, updated int64
	var action string
	if err := sc.Scan(&c.ID, &c.TenantID, &c.Kind, &c.Name, &c.URL, &headers, &policy, &c.TimeoutS, &enabled,
		&c.DisabledReason, &c.MaxInFlight, &c.RateLimitPerSec, &secrets, &created, &updated, &action); err != nil {
		return nil, err
	}
	c.Enabled = enabled == 1
	c.CreatedAt, c.UpdatedAt = fromTS(created), fromTS(updated)
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

func channelArgs(c *herald.Channel) ([]any, error) {
	headers, err := json.Marshal(c.Headers)
	if err != nil {
		return nil, err
	}
	if c.Headers == nil {
		headers = []byte("{}")
	}
	policy, err := json.Marshal(c.Policy)
	if err != nil {
		return nil, err
	}
	secrets, err := json.Marshal(c.Secrets)
	if err != nil {
		return nil, err
	}
	action, err := herald.EncodeAction(c.Action)
	if err != nil {
		return nil, err
	}
	return []any{c.ID, c.TenantID, c.Kind, c.Name, c.URL, string(headers), string(policy), c.TimeoutS, b2i(c.Enabled),
		c.DisabledReason, c.MaxInFlight, c.RateLimitPerSec, string(secrets), ts(c.CreatedAt), ts(c.UpdatedAt), action}, nil
}

// CreateChannel stores a new channel.
func (s *Store) CreateChannel(ctx context.Context, c *herald.Channel) error {
	args, err := channelArgs(c)
	if err != nil {
		return err
	}
	return s.configWrite(ctx, func(tx *wtx) error {
		_, err := tx.Exec(insertChannelSQL, args...)
		return err
	})
}

// insertChannelSQL stores a channel from channelArgs; CreateChannel and
// CreateChannelWithSubscription share it.
const insertChannelSQL = `INSERT INTO channels(` + channelCols + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

// CreateChannelWithSubscription stores a channel and one subscription to
// it in one transaction.
func (s *Store) CreateChannelWithSubscription(ctx context.Context, c *herald.Channel, sub *herald.Subscription) error {
	args, err := channelArgs(c)
	if err != nil {
		return err
	}
	return s.configWrite(ctx, func(tx *wtx) error {
		if _, err := tx.Exec(insertChannelSQL, args...); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO subscriptions(`+subCols+`) VALUES (?,?,?,?,?,?,?,?)`, sub.ID, sub.TenantID, sub.ChannelID,
			jsonList(sub.EventTypes), jsonList(sub.Sources), sub.Filter, ts(sub.CreatedAt), ts(sub.UpdatedAt))
		return err
	})
}

// GetChannel finds a tenant's channel.
func (s *Store) GetChannel(ctx context.Context, tenantID, id string) (*herald.Channel, error) {
	c, err := scanChannel(s.queryRow(ctx, `SELECT `+channelCols+` FROM channels WHERE tenant_id = ? AND id = ?`, tenantID, id))
	return c, notFound(err)
}

// ListChannels lists a tenant's channels, newest first.
func (s *Store) ListChannels(ctx context.Context, tenantID string, p herald.Page) ([]herald.Channel, error) {
	q := newQuery(`SELECT `+channelCols+` FROM channels WHERE tenant_id = ?`, tenantID)
	q.page(p)
	return list(ctx, s, q, scanChannel)
}

// ListChannelsOfKind lists a tenant's channels of one kind, newest first.
func (s *Store) ListChannelsOfKind(ctx context.Context, tenantID, kind string, p herald.Page) ([]herald.Channel, error) {
	q := newQuery(`SELECT `+channelCols+` FROM channels WHERE tenant_id = ?`, tenantID)
	q.and(`kind = ?`, kind)
	q.page(p)
	return list(ctx, s, q, scanChannel)
}

// UpdateChannel writes a channel's mutable fields; disabling it fails its
// pending deliveries.
func (s *Store) UpdateChannel(ctx context.Context, c *herald.Channel) error {
	args, err := channelArgs(c)
	if err != nil {
		return err
	}
	return s.configWrite(ctx, func(tx *wtx) error {
		res, err := tx.Exec(`UPDATE channels SET name = ?, url = ?, headers = ?, policy = ?, timeout_s = ?, enabled = ?,
			disabled_reason = ?, max_in_flight = ?, rate_limit_per_sec = ?, secrets = ?, updated_at = ?, action = ?
			WHERE tenant_id = ? AND id = ?`,
			args[3], args[4], args[5], args[6], args[7], args[8], args[9], args[10], args[11], args[12], args[14], args[15], c.TenantID, c.ID)
		if err != nil {
			return err
		}
		if err := mustAffect(res); err != nil {
			return err
		}
		if !c.Enabled {
			return failPending(tx, c.ID, "channel disabled: "+c.DisabledReason, c.UpdatedAt)
		}
		return nil
	})
}

// failPending ends every pending, not in-flight delivery of a channel. An
// in-flight one finishes its attempt and is then failed by the dispatcher,
// which sees the channel disabled.
func failPending(tx *wtx, channelID, reason string, at time.Time) error {
	_, err := tx.Exec(failPendingSQL, reason, ts(at), channelID)
	return err
}

// failPendingSQL names its index: left to itself, the planner walks the
// channel's whole log in deliveries_channel (TestIndexedQueries).
const failPendingSQL = `UPDATE deliveries INDEXED BY deliveries_pending SET status = 'failed', next_attempt_at = NULL, last_error = ?, updated_at = ?
	WHERE channel_id = ? AND status = 'pending' AND lease_until IS NULL`

// DeleteChannel removes a channel and its subscriptions and fails its
// pending deliveries; the deliveries stay in the log.
func (s *Store) DeleteChannel(ctx context.Context, tenantID, id string, at time.Time) error {
	return s.configWrite(ctx, func(tx *wtx) error {
		if err := deleteChannel(tx, tenantID, id); err != nil {
			return err
		}
		return failPending(tx, id, "channel deleted", at)
	})
}

// deleteChannel removes a channel and its subscriptions; ErrNotFound if
// there was no such channel.
func deleteChannel(tx *wtx, tenantID, id string) error {
	if _, err := tx.Exec(`DELETE FROM subscriptions WHERE tenant_id = ? AND channel_id = ?`, tenantID, id); err != nil {
		return err
	}
	res, err := tx.Exec(`DELETE FROM channels WHERE tenant_id = ? AND id = ?`, tenantID, id)
	if err != nil {
		return err
	}
	return mustAffect(res)
}

const subCols = `id, tenant_id, channel_id, event_types, sources, filter, created_at, updated_at`

func scanSub(sc scanner) (*herald.Subscription, error) {
	var sub herald.Subscription
	var types, sources string
	var created, updated int64
	if err := sc.Scan(&sub.ID, &sub.TenantID, &sub.ChannelID, &types, &sources, &sub.Filter, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(types), &sub.EventTypes); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(sources), &sub.Sources); err != nil {
		return nil, err
	}
	sub.CreatedAt, sub.UpdatedAt = fromTS(created), fromTS(updated)
	return &sub, nil
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// CreateSubscription stores a subscription; its channel must exist.
func (s *Store) CreateSubscription(ctx context.Context, sub *herald.Subscription) error {
	return s.configWrite(ctx, func(tx *wtx) error {
		if err := channelExists(tx, sub.TenantID, sub.ChannelID); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO subscriptions(`+subCols+`) VALUES (?,?,?,?,?,?,?,?)`, sub.ID, sub.TenantID, sub.ChannelID,
			jsonList(sub.EventTypes), jsonList(sub.Sources), sub.Filter, ts(sub.CreatedAt), ts(sub.UpdatedAt))
		return err
	})
}

func channelExists(tx *wtx, tenantID, id string) error {
	var one int
	if err := tx.QueryRow(`SELECT 1 FROM channels WHERE tenant_id = ? AND id = ?`, tenantID, id).Scan(&one); err != nil {
		if notFound(err) == herald.ErrNotFound {
			return herald.Invalid("channel_id", "no channel %q in this tenant; create it first with POST /v1/tenants/%s/channels", id, tenantID)
		}
		return err
	}
	return nil
}

// GetSubscription finds a subscription.
func (s *Store) GetSubscription(ctx context.Context, tenantID, id string) (*herald.Subscription, error) {
	sub, err := scanSub(s.queryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE tenant_id = ? AND id = ?`, tenantID, id))
	return sub, notFound(err)
}

// ListSubscriptions lists subscriptions, newest first.
func (s *Store) ListSubscriptions(ctx context.Context, tenantID string, f herald.SubscriptionFilter, p herald.Page) ([]herald.Subscription, error) {
	q := newQuery(`SELECT `+subCols+` FROM subscriptions WHERE tenant_id = ?`, tenantID)
	if f.ChannelID != "" {
		q.and(`channel_id = ?`, f.ChannelID)
	}
	q.page(p)
	return list(ctx, s, q, scanSub)
}

func (s *Store) querySubs(ctx context.Context, q string, args ...any) ([]herald.Subscription, error) {
	return list(ctx, s, newQuery(q, args...), scanSub)
}

// UpdateSubscription writes a subscription's mutable fields.
func (s *Store) UpdateSubscription(ctx context.Context, sub *herald.Subscription) error {
	return s.configWrite(ctx, func(tx *wtx) error {
		if err := channelExists(tx, sub.TenantID, sub.ChannelID); err != nil {
			return err
		}
		res, err := tx.Exec(`UPDATE subscriptions SET channel_id = ?, event_types = ?, sources = ?, filter = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ?`, sub.ChannelID, jsonList(sub.EventTypes), jsonList(sub.Sources), sub.Filter,
			ts(sub.UpdatedAt), sub.TenantID, sub.ID)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
}

// DeleteSubscription removes a subscription.
func (s *Store) DeleteSubscription(ctx context.Context, tenantID, id string) error {
	return s.configWrite(ctx, func(tx *wtx) error {
		res, err := tx.Exec(`DELETE FROM subscriptions WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
}

// Routes reads a tenant's routing table.
func (s *Store) Routes(ctx context.Context, tenantID string) (*herald.Routes, error) {
	subs, err := s.querySubs(ctx, `SELECT s.id, s.tenant_id, s.channel_id, s.event_types, s.sources, s.filter, s.created_at, s.updated_at
		FROM subscriptions s JOIN channels c ON c.id = s.channel_id
		WHERE s.tenant_id = ? AND c.enabled = 1 ORDER BY s.id`, tenantID)
	if err != nil {
		return nil, err
	}
	disabled, err := s.disabledTypes(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	r := &herald.Routes{Subscriptions: subs, DisabledTypes: make(map[string]bool, len(disabled))}
	for _, n := range disabled {
		r.DisabledTypes[n] = true
	}
	return r, nil
}
