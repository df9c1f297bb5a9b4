package postgres

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/testenv"
)

// TestInterruptedAttemptsEndedOncePerSecond: claims end a manual attempt
// whose process died once its lease has passed, but look for such
// attempts only once a second by the claims' clock, as each look walks
// every lease.
func TestInterruptedAttemptsEndedOncePerSecond(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	ch := tenantWithChannel(t, s, now)
	claim := func(at time.Time) {
		t.Helper()
		if _, err := s.ClaimDeliveries(ctx, herald.ClaimParams{Now: at, Limit: 10, LeaseSlack: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	status := func(id string) herald.DeliveryStatus {
		t.Helper()
		d, err := s.GetDelivery(ctx, "a", id)
		if err != nil {
			t.Fatal(err)
		}
		return d.Status
	}

	claim(now) // the first claim looks: there is nothing yet
	// A channel test leased for 100 ms, whose process never reports.
	until := now.Add(100 * time.Millisecond)
	e := herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: "a", Type: "x.y", Source: "shop",
		OccurredAt: now, Data: json.RawMessage(`{}`), CreatedAt: now}
	res, err := s.Publish(ctx, []herald.Publication{{Event: e, ChannelIDs: []string{ch.ID}, LeaseUntil: &until}})
	if err != nil {
		t.Fatal(err)
	}
	test := res[0].DeliveryIDs[0]

	claim(now.Add(500 * time.Millisecond)) // lease passed, but under a second since the last look
	if got := status(test); got != herald.StatusPending {
		t.Fatalf("interrupted attempt %s within a second of the last look, want it left pending", got)
	}
	claim(now.Add(time.Second))
	if got := status(test); got != herald.StatusFailed {
		t.Fatalf("interrupted attempt %s a second after the last look, want failed", got)
	}
}

// TestFailedResultsWriteNothing: results go as one batch with BEGIN and
// COMMIT in it; when one statement fails, none of the batch is written,
// and the connection, its transaction ended, is used again (the pool
// holds one, so a closed one would be replaced by a new one).
func TestFailedResultsWriteNothing(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(testenv.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	s, err := Open(ctx, u.String(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ch := tenantWithChannel(t, s, now)
	var pubs []herald.Publication
	for range 2 {
		pubs = append(pubs, herald.Publication{Event: herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: "a", Type: "x.y",
			Source: "shop", OccurredAt: now, Data: json.RawMessage(`{}`), CreatedAt: now}, ChannelIDs: []string{ch.ID}})
	}
	if _, err := s.Publish(ctx, pubs); err != nil {
		t.Fatal(err)
	}
	claims, err := s.ClaimDeliveries(ctx, herald.ClaimParams{Now: now, Limit: 10, LeaseSlack: time.Second})
	if err != nil || len(claims) != 2 {
		t.Fatalf("claimed %d (%v), want 2", len(claims), err)
	}
	result := func(c herald.Claim, number int, attemptID string) herald.Completion {
		d := c.Delivery
		d.Status, d.Attempts, d.LastStatus, d.UpdatedAt, d.NextAttemptAt = herald.StatusSucceeded, number, 200, now, nil
		return herald.Completion{Delivery: d, Attempt: herald.Attempt{ID: attemptID, DeliveryID: d.ID, TenantID: "a", Number: number,
			StartedAt: now, DurationMS: 1, StatusCode: 200, Trigger: herald.TriggerAuto}}
	}
	// Second attempts go to attempts, and the second result's reuses the
	// first's id: its insert fails.
	att := herald.NewID(herald.PrefixAttempt, now)
	conns := s.pool.Stat().NewConnsCount()
	err = s.CompleteDeliveries(ctx, []herald.Completion{result(claims[0], 2, att), result(claims[1], 2, att)})
	if err == nil {
		t.Fatal("a batch with a duplicate attempt id was written")
	}
	for _, c := range claims {
		if d, err := s.GetDelivery(ctx, "a", c.Delivery.ID); err != nil || d.Status != herald.StatusPending {
			t.Fatalf("after the failed batch, delivery %s is %v (%v), want pending", c.Delivery.ID, d.Status, err)
		}
	}
	if err := s.CompleteDeliveries(ctx, []herald.Completion{result(claims[0], 1, att)}); err != nil {
		t.Fatalf("a result after the failed batch: %v", err)
	}
	if d, err := s.GetDelivery(ctx, "a", claims[0].Delivery.ID); err != nil || d.Status != herald.StatusSucceeded {
		t.Fatalf("delivery %s is %v (%v) after its result, want succeeded", claims[0].Delivery.ID, d.Status, err)
	}
	if n := s.pool.Stat().NewConnsCount() - conns; n != 0 {
		t.Errorf("%d new connections after a failed batch: its connection was closed, not used again", n)
	}
}

// tenantWithChannel stores tenant "a" and a webhook channel of it.
func tenantWithChannel(t *testing.T, s *Store, now time.Time) *herald.Channel {
	t.Helper()
	ctx := context.Background()
	createTenant(t, s, now)
	ch := &herald.Channel{ID: herald.NewID(herald.PrefixChannel, now), TenantID: "a", Kind: herald.ChannelWebhook, Name: "c",
		URL: "https://example.com/hook", Policy: herald.StandardPolicy(), Enabled: true, MaxInFlight: 16,
		Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

// openStore opens a Store on a fresh database, closed when t ends.
func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), testenv.PostgresDB(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// createTenant stores tenant "a" with a key.
func createTenant(t *testing.T, s *Store, now time.Time) {
	t.Helper()
	key := &herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, now), TenantID: "a", Prefix: "hk_a", Hash: make([]byte, 32), CreatedAt: now}
	if err := s.CreateTenant(context.Background(), &herald.Tenant{ID: "a", Name: "A", CreatedAt: now}, key); err != nil {
		t.Fatal(err)
	}
}

// TestDueChannelsLeaveOutFullOnes: a channel this process keeps at its
// limit and queue is left out of the search for due deliveries (which
// steps over every lease it holds), one with room is not, and one with a
// rate limit is full at its limit alone.
func TestDueChannelsLeaveOutFullOnes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	ch := tenantWithChannel(t, s, now) // 16 in flight
	rated := &herald.Channel{ID: herald.NewID(herald.PrefixChannel, now), TenantID: "a", Kind: herald.ChannelWebhook, Name: "r",
		URL: "https://example.com/hook", Policy: herald.StandardPolicy(), Enabled: true, MaxInFlight: 4, RateLimitPerSec: 10,
		Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateChannel(ctx, rated); err != nil {
		t.Fatal(err)
	}
	e := herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: "a", Type: "x.y", Source: "shop", OccurredAt: now,
		Data: json.RawMessage(`{}`), CreatedAt: now}
	if _, err := s.Publish(ctx, []herald.Publication{{Event: e, ChannelIDs: []string{ch.ID, rated.ID}}}); err != nil {
		t.Fatal(err)
	}
	due := func(busy map[string]int) []string {
		t.Helper()
		ids, n, q := busyChannels(herald.ClaimParams{Busy: busy, Queue: 512})
		rows, err := s.pool.Query(ctx, dueChannelsSQL, now.Add(time.Second), ids, n, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for rows.Next() {
			var id string
			var limit *int
			var leases int
			if err := rows.Scan(&id, &limit, &leases); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	both := []string{ch.ID, rated.ID}
	slices.Sort(both)
	for _, c := range []struct {
		name string
		busy map[string]int
		want []string
	}{
		{"nothing in flight", nil, both},
		{"room left", map[string]int{ch.ID: 16 + 511, rated.ID: 3}, both},
		{"limit and queue reached", map[string]int{ch.ID: 16 + 512}, []string{rated.ID}},
		{"rate-limited channel at its limit", map[string]int{rated.ID: 4}, []string{ch.ID}},
	} {
		if got := due(c.busy); !slices.Equal(got, c.want) {
			t.Errorf("%s: due channels %v, want %v", c.name, got, c.want)
		}
	}
}
