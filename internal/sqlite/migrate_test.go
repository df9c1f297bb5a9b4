package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/internal/storetest"
)

// TestFirstAttemptMigration: attempts recorded before first attempts moved
// onto the delivery's row are still listed after the upgrade, alongside
// the new ones; migrating back down moves the kept first attempts into
// attempts, so the log stays whole both ways.
func TestFirstAttemptMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "herald.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := migrator(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	// A delivery of version 4, with its first attempt in attempts.
	for _, q := range []string{
		`INSERT INTO tenants(id, name, created_at) VALUES ('t', 't', 0)`,
		`INSERT INTO deliveries(id, tenant_id, event_id, event_type, channel_id, status, attempts, last_status, created_at, updated_at)
			VALUES ('dlv_old', 't', 'evt_1', 'x.y', 'ch_1', 'pending', 1, 500, 0, 0)`,
		`INSERT INTO attempts(id, delivery_id, tenant_id, number, started_at, duration_ms, status_code, response_body, error_class, error, trigger)
			VALUES ('att_old1', 'dlv_old', 't', 1, 1000, 5, 500, 'oops', 'status', 'receiver answered 500', 'auto')`,
		`INSERT INTO deliveries(id, tenant_id, event_id, event_type, channel_id, status, created_at, updated_at)
			VALUES ('dlv_new', 't', 'evt_2', 'x.y', 'ch_1', 'pending', 0, 0)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.FirstAttemptUpgrade(t, s)
	var inline int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE first_attempt_id = 'att_new1'`).Scan(&inline); err != nil || inline != 1 {
		t.Fatalf("the new delivery's first attempt is not on its row (%d, %v)", inline, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if p, err = migrator(db); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM attempts WHERE id = 'att_new1' AND delivery_id = 'dlv_new' AND number = 1
		AND status_code = 200 AND duration_ms = 3 AND trigger = 'auto'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after migrating down, the kept first attempt is not in attempts (%d, %v)", n, err)
	}
}
