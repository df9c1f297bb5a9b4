package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
)

// CreateTenant stores a tenant with its first key.
func (s *Store) CreateTenant(ctx context.Context, t *herald.Tenant, key *herald.APIKey) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tenants(id, name, created_at) VALUES ($1, $2, $3)`, t.ID, t.Name, t.CreatedAt); err != nil {
			if isUnique(err) {
				return &herald.ConflictError{Detail: fmt.Sprintf("tenant %q already exists; choose another id", t.ID)}
			}
			return fmt.Errorf("insert tenant: %w", err)
		}
		return insertKey(ctx, tx, key)
	})
}

func insertKey(ctx context.Context, tx pgx.Tx, k *herald.APIKey) error {
	_, err := tx.Exec(ctx, `INSERT INTO api_keys(id, tenant_id, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.TenantID, k.Prefix, k.Hash, k.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

// GetTenant finds a tenant.
func (s *Store) GetTenant(ctx context.Context, id string) (*herald.Tenant, error) {
	var t herald.Tenant
	err := s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM tenants WHERE id = $1`, id).Scan(&t.ID, &t.Name, &t.CreatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return &t, nil
}

// ListTenants lists tenants, newest first.
func (s *Store) ListTenants(ctx context.Context, p herald.Page) ([]herald.Tenant, error) {
	q := newQuery(`SELECT id, name, created_at FROM tenants WHERE true`)
	q.page(p)
	rows, err := s.pool.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.Tenant, error) {
		var t herald.Tenant
		err := r.Scan(&t.ID, &t.Name, &t.CreatedAt)
		t.CreatedAt = t.CreatedAt.UTC()
		return t, err
	})
	return out, mapErr(err)
}

// CreateAPIKey adds a key to a tenant.
func (s *Store) CreateAPIKey(ctx context.Context, k *herald.APIKey) error {
	return s.configTx(ctx, func(tx pgx.Tx) error { return insertKey(ctx, tx, k) })
}

// ListAPIKeys lists a tenant's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]herald.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY id DESC`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.APIKey, error) {
		var k herald.APIKey
		err := r.Scan(&k.ID, &k.TenantID, &k.Prefix, &k.CreatedAt, &k.RevokedAt)
		k.CreatedAt = k.CreatedAt.UTC()
		return k, err
	})
	return out, mapErr(err)
}

// RevokeAPIKey revokes a key.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, id string, at time.Time) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE tenant_id = $2 AND id = $3`, at, tenantID, id)
		if err == nil && tag.RowsAffected() == 0 {
			return herald.ErrNotFound
		}
		return err
	})
}

// APIKeyByHash finds an unrevoked key.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*herald.APIKey, error) {
	var k herald.APIKey
	err := s.pool.QueryRow(ctx, `SELECT id, tenant_id, prefix, created_at FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`, hash).
		Scan(&k.ID, &k.TenantID, &k.Prefix, &k.CreatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	return &k, nil
}

// CreateEventType stores a tenant's custom type.
func (s *Store) CreateEventType(ctx context.Context, tenantID string, et *herald.EventType) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO event_types(tenant_id, name, grp, title, description, schema, example, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now())`,
			tenantID, et.Name, et.Group, et.Title, et.Description, nullJSON(et.Schema), nullJSON(et.Example))
		if isUnique(err) {
			return &herald.ConflictError{Detail: fmt.Sprintf("event type %q already exists for this tenant", et.Name)}
		}
		return err
	})
}

func nullJSON(b json.RawMessage) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// ListEventTypes returns the tenant's custom types.
func (s *Store) ListEventTypes(ctx context.Context, tenantID string) ([]herald.EventType, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, grp, title, description, schema, example FROM event_types WHERE tenant_id = $1 ORDER BY name`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (herald.EventType, error) {
		var et herald.EventType
		var schema, example *string
		if err := r.Scan(&et.Name, &et.Group, &et.Title, &et.Description, &schema, &example); err != nil {
			return et, err
		}
		if schema != nil {
			et.Schema = json.RawMessage(*schema)
		}
		if example != nil {
			et.Example = json.RawMessage(*example)
		}
		et.Origins = []string{herald.OriginCustom}
		return et, nil
	})
	return out, mapErr(err)
}

// SetEventTypeEnabled turns a type on or off for a tenant.
func (s *Store) SetEventTypeEnabled(ctx context.Context, tenantID, name string, enabled bool) error {
	return s.configTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO event_toggles(tenant_id, name, enabled) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id, name) DO UPDATE SET enabled = excluded.enabled`, tenantID, name, enabled)
		return err
	})
}

// DisabledEventTypes lists the types a tenant turned off.
func (s *Store) DisabledEventTypes(ctx context.Context, tenantID string) ([]string, error) {
	return disabledTypes(ctx, s.pool, tenantID)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func disabledTypes(ctx context.Context, q querier, tenantID string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT name FROM event_toggles WHERE tenant_id = $1 AND NOT enabled ORDER BY name`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, mapErr(err)
}
