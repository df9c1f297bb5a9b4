package postgres

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/testenv"
)

// TestGatheredPublishes: publishes that wait together are written as one
// batch, each answered with its own result; and when one request's write
// fails (its tenant does not exist), it fails alone: the requests gathered
// with it are stored.
func TestGatheredPublishes(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresDB(t)
	s, err := Open(ctx, url, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	createTenant(t, s, now)
	type answer struct {
		i   int
		id  string
		res []herald.PublishResult
		err error
	}
	answers := make(chan answer, 32)
	publish := func(i int, tenant string) {
		e := herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: tenant, Type: "order.completed", Source: "shop",
			OccurredAt: now, Data: json.RawMessage(`{"n":1}`), CreatedAt: now}
		go func() {
			res, err := s.Publish(ctx, []herald.Publication{{Event: e}})
			answers <- answer{i, e.ID, res, err}
		}()
	}
	waiting := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); s.gather.Waiting() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d publishes wait for a write, want %d", s.gather.Waiting(), n)
			}
		}
	}
	// Hold the first write on a lock of the events table, so that the
	// others all wait for the next.
	lock, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE events IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	publish(0, "a")
	// Taken by the held write once it waits for the lock; until then the
	// others could join its batch.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'events'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first publish never waited for the lock on events")
		}
	}
	waiting(0)
	const n, bad = 21, 7
	for i := 1; i < n; i++ {
		tenant := "a"
		if i == bad {
			tenant = "missing"
		}
		publish(i, tenant)
	}
	waiting(n - 1)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range n {
		a := <-answers
		if a.i == bad {
			if a.err == nil {
				t.Fatal("the publish for a tenant that does not exist succeeded")
			}
			continue
		}
		if a.err != nil {
			t.Fatalf("publish %d failed with the bad one gathered: %v", a.i, a.err)
		}
		if len(a.res) != 1 || a.res[0].EventID != a.id {
			t.Fatalf("publish %d answered %+v, want its own event %s", a.i, a.res, a.id)
		}
		if _, err := s.GetEvent(ctx, "a", a.id); err != nil {
			t.Fatalf("event of publish %d not stored: %v", a.i, err)
		}
	}
}
