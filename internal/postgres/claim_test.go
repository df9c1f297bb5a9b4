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

// TestInterruptedAttemptsEndedOncePerSecond: claims end a manual attempt
// whose process died once its lease has passed, but look for such
// attempts only once a second by the claims' clock, as each look walks
// every lease.
func TestInterruptedAttemptsEndedOncePerSecond(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresDB(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	key := &herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, now), TenantID: "a", Prefix: "hk_a", Hash: make([]byte, 32), CreatedAt: now}
	if err := s.CreateTenant(ctx, &herald.Tenant{ID: "a", Name: "A", CreatedAt: now}, key); err != nil {
		t.Fatal(err)
	}
	ch := &herald.Channel{ID: herald.NewID(herald.PrefixChannel, now), TenantID: "a", Kind: herald.ChannelWebhook, Name: "c",
		URL: "https://example.com/hook", Policy: herald.StandardPolicy(), Enabled: true, MaxInFlight: 16,
		Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
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
