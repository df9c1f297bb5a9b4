package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// CreateTenant stores a tenant with its first key.
func (s *Store) CreateTenant(ctx context.Context, t *herald.Tenant, key *herald.APIKey) error {
	return s.configWrite(ctx, func(tx *wtx) error {
		if _, err := tx.Exec(`INSERT INTO tenants(id, name, created_at) VALUES (?, ?, ?)`, t.ID, t.Name, ts(t.CreatedAt)); err != nil {
			if isUnique(err) {
				return &herald.ConflictError{Detail: fmt.Sprintf("tenant %q already exists; choose another id", t.ID)}
			}
			return fmt.Errorf("insert tenant: %w", err)
		}
		return insertKey(tx, key)
	})
}

func insertKey(tx *wtx, k *herald.APIKey) error {
	_, err := tx.Exec(`INSERT INTO api_keys(id, tenant_id, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.TenantID, k.Prefix, k.Hash, ts(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// GetTenant finds a tenant.
func (s *Store) GetTenant(ctx context.Context, id string) (*herald.Tenant, error) {
	var t herald.Tenant
	var created int64
	err := s.queryRow(ctx, `SELECT id, name, created_at FROM tenants WHERE id = ?`, id).Scan(&t.ID, &t.Name, &created)
	if err != nil {
		return nil, notFound(err)
	}
	t.CreatedAt = fromTS(created)
	return &t, nil
}

// ListTenants lists tenants, newest first.
func (s *Store) ListTenants(ctx context.Context, p herald.Page) ([]herald.Tenant, error) {
	q := newQuery(`SELECT id, name, created_at FROM tenants WHERE 1`)
	q.page(p)
	return list(ctx, s, q, func(sc scanner) (*herald.Tenant, error) {
		var t herald.Tenant
		var created int64
		err := sc.Scan(&t.ID, &t.Name, &created)
		t.CreatedAt = fromTS(created)
		return &t, err
	})
}

// CreateAPIKey adds a key to a tenant.
func (s *Store) CreateAPIKey(ctx context.Context, k *herald.APIKey) error {
	return s.configWrite(ctx, func(tx *wtx) error { return insertKey(tx, k) })
}

// ListAPIKeys lists a tenant's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]herald.APIKey, error) {
	rows, err := s.query(ctx, `SELECT id, tenant_id, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = ? ORDER BY id DESC`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []herald.APIKey
	for rows.Next() {
		var k herald.APIKey
		var created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&k.ID, &k.TenantID, &k.Prefix, &created, &revoked); err != nil {
			return nil, err
		}
		k.CreatedAt, k.RevokedAt = fromTS(created), fromNullTS(revoked)
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes a key.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, id string, at time.Time) error {
	return s.configWrite(ctx, func(tx *wtx) error {
		res, err := tx.Exec(`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND id = ?`, ts(at), tenantID, id)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
}

// APIKeyByHash finds an unrevoked key.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*herald.APIKey, error) {
	var k herald.APIKey
	var created int64
	err := s.queryRow(ctx, `SELECT id, tenant_id, prefix, created_at FROM api_keys WHERE hash = ? AND revoked_at IS NULL`, hash).
		Scan(&k.ID, &k.TenantID, &k.Prefix, &created)
	if err != nil {
		return nil, notFound(err)
	}
	k.CreatedAt = fromTS(created)
	return &k, nil
}

func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return herald.ErrNotFound
	}
	return nil
}

// CreateEventType stores a tenant's custom type.
func (s *Store) CreateEventType(ctx context.Context, tenantID string, et *herald.EventType) error {
	return s.configWrite(ctx, func(tx *wtx) error {
		_, err := tx.Exec(`INSERT INTO event_types(tenant_id, name, grp, title, description, schema, example, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			tenantID, et.Name, et.Group, et.Title, et.Description, nullJSON(et.Schema), nullJSON(et.Example), time.Now().UnixNano())
		if isUnique(err) {
			return &herald.ConflictError{Detail: fmt.Sprintf("event type %q already exists for this tenant", et.Name)}
		}
		return err
	})
}

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// ListEventTypes returns the tenant's custom types.
func (s *Store) ListEventTypes(ctx context.Context, tenantID string) ([]herald.EventType, error) {
	rows, err := s.query(ctx, `SELECT name, grp, title, description, schema, example FROM event_types WHERE tenant_id = ? ORDER BY name`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []herald.EventType
	for rows.Next() {
		var et herald.EventType
		var schema, example sql.NullString
		if err := rows.Scan(&et.Name, &et.Group, &et.Title, &et.Description, &schema, &example); err != nil {
			return nil, err
		}
		if schema.Valid {
			et.Schema = json.RawMessage(schema.String)
		}
		if example.Valid {
			et.Example = json.RawMessage(example.String)
		}
		et.Origins = []string{herald.OriginCustom}
		out = append(out, et)
	}
	return out, rows.Err()
}

// SetEventTypeEnabled turns a type on or off for a tenant.
func (s *Store) SetEventTypeEnabled(ctx context.Context, tenantID, name string, enabled bool) error {
	return s.configWrite(ctx, func(tx *wtx) error {
		_, err := tx.Exec(`INSERT INTO event_toggles(tenant_id, name, enabled) VALUES (?, ?, ?)
			ON CONFLICT(tenant_id, name) DO UPDATE SET enabled = excluded.enabled`, tenantID, name, b2i(enabled))
		return err
	})
}

// DisabledEventTypes lists the types a tenant turned off.
func (s *Store) DisabledEventTypes(ctx context.Context, tenantID string) ([]string, error) {
	return s.disabledTypes(ctx, tenantID)
}

func (s *Store) disabledTypes(ctx context.Context, tenantID string) ([]string, error) {
	rows, err := s.query(ctx, `SELECT name FROM event_toggles WHERE tenant_id = ? AND enabled = 0 ORDER BY name`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
