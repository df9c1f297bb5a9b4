package postgres

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"testing"

	"github.com/heraldhq/herald/internal/storetest"
	"github.com/heraldhq/herald/internal/testenv"
)

// TestFirstAttemptMigration: attempts recorded before first attempts moved
// onto the delivery's row are still listed after the upgrade, alongside
// the new ones; migrating back down moves the kept first attempts into
// attempts, so the log stays whole both ways.
func TestFirstAttemptMigration(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresDB(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := migrator(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	// A delivery of version 5, with its first attempt in attempts.
	for _, q := range []string{
		`INSERT INTO tenants(id, name, created_at) VALUES ('t', 't', now())`,
		`INSERT INTO deliveries(id, tenant_id, event_id, event_type, channel_id, status, attempts, last_status, created_at, updated_at)
			VALUES ('dlv_old', 't', 'evt_1', 'x.y', 'ch_1', 'pending', 1, 500, now(), now())`,
		`INSERT INTO attempts(id, delivery_id, tenant_id, number, started_at, duration_ms, status_code, response_body, error_class, error, trigger)
			VALUES ('att_old1', 'dlv_old', 't', 1, now(), 5, 500, 'oops', 'status', 'receiver answered 500', 'auto')`,
		`INSERT INTO deliveries(id, tenant_id, event_id, event_type, channel_id, status, created_at, updated_at)
			VALUES ('dlv_new', 't', 'evt_2', 'x.y', 'ch_1', 'pending', now(), now())`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s, err := Open(ctx, url, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	storetest.FirstAttemptUpgrade(t, s)
	var inline, apart int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM deliveries WHERE first_attempt_id = 'att_new1'),
		(SELECT count(*) FROM attempts WHERE id = 'att_new1')`).Scan(&inline, &apart); err != nil || inline != 1 || apart != 0 {
		t.Fatalf("the new delivery's first attempt is on %d rows of deliveries and %d of attempts, want 1 and 0 (%v)", inline, apart, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM attempts WHERE id = 'att_new1' AND delivery_id = 'dlv_new' AND number = 1
		AND status_code = 200 AND duration_ms = 3 AND trigger = 'auto'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after migrating down, the kept first attempt is not in attempts (%d, %v)", n, err)
	}
}
