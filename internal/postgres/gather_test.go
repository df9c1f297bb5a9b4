package postgres

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/testenv"
)

// TestGatheredPublishes: publishes that wait together are written as one
// batch, each answered with its own result; and when one request's write
// fails (its tenant does not exist), it fails alone: the requests gathered
// with it are stored.
func TestGatheredPublishes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresDB(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	key := &herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, now), TenantID: "a", Prefix: "hk_a", Hash: make([]byte, 32), CreatedAt: now}
	if err := s.CreateTenant(ctx, &herald.Tenant{ID: "a", Name: "A", CreatedAt: now}, key); err != nil {
		t.Fatal(err)
	}
	// As if a write were running: every request queues until the loop
	// below starts, so all go in one batch.
	s.gather.mu.Lock()
	s.gather.running = true
	s.gather.mu.Unlock()
	const n, bad = 20, 7
	type answer struct {
		i   int
		id  string
		res []herald.PublishResult
		err error
	}
	answers := make(chan answer, n)
	for i := range n {
		tenant := "a"
		if i == bad {
			tenant = "missing"
		}
		e := herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: tenant, Type: "order.completed", Source: "shop",
			OccurredAt: now, Data: json.RawMessage(`{"n":1}`), CreatedAt: now}
		go func() {
			res, err := s.Publish(ctx, []herald.Publication{{Event: e}})
			answers <- answer{i, e.ID, res, err}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.gather.mu.Lock()
		queued := len(s.gather.queue)
		s.gather.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d publishes queued", queued, n)
		}
	}
	go s.gatherLoop()
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
	s.gather.mu.Lock()
	defer s.gather.mu.Unlock()
	if len(s.gather.queue) != 0 || s.gather.running {
		t.Fatalf("after the batch: %d queued, running %v; want none, stopped", len(s.gather.queue), s.gather.running)
	}
}
