package sqlite

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// TestClaimSkipsDeliveryWithoutEvent: a delivery whose event is missing
// (Herald never writes one, but a damaged database may hold one) cannot
// be sent; a claim leaves it pending and still hands out the channel's
// other deliveries instead of failing.
func TestClaimSkipsDeliveryWithoutEvent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ch := MakeChannel(t, s, now, 16)
	// The orphan is older, so a claim meets it first.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO deliveries(id, tenant_id, event_id, event_type, channel_id, status, next_attempt_at, created_at, updated_at)
		VALUES ('dlv_orphan', 't', 'evt_gone', 'x.y', ?, 'pending', ?, ?, ?)`, ch.ID, ts(now.Add(-time.Minute)), ts(now), ts(now)); err != nil {
		t.Fatal(err)
	}
	res, err := s.Publish(ctx, []herald.Publication{{Event: herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: "t", Type: "x.y",
		Source: "shop", OccurredAt: now, Data: []byte(`{}`), CreatedAt: now}, ChannelIDs: []string{ch.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := s.ClaimDeliveries(ctx, herald.ClaimParams{Now: now.Add(time.Second), Limit: 10, LeaseSlack: time.Minute})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if len(claims) != 1 || claims[0].Delivery.ID != res[0].DeliveryIDs[0] || claims[0].Event.ID != res[0].EventID {
		t.Fatalf("claimed %+v, want only the delivery %s", claims, res[0].DeliveryIDs[0])
	}
	if d, err := s.GetDelivery(ctx, "t", "dlv_orphan"); err != nil || d.Status != herald.StatusPending {
		t.Fatalf("the orphan: %+v, %v", d, err)
	}
}

// TestLeasesReleasedAtStart: a process that died left a delivery leased by
// a claim and another by a manual attempt; the next start makes the first
// due again at once and fails the second, so a person can retry it.
func TestLeasesReleasedAtStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ch := MakeChannel(t, s, now, 16)
	var ids []string
	for range 2 {
		res, err := s.Publish(ctx, []herald.Publication{{Event: herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: "t", Type: "x.y",
			Source: "shop", OccurredAt: now, Data: []byte(`{}`), CreatedAt: now}, ChannelIDs: []string{ch.ID}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res[0].DeliveryIDs[0])
	}
	claims, err := s.ClaimDeliveries(ctx, herald.ClaimParams{Now: now, Limit: 10, LeaseSlack: time.Hour})
	if err != nil || len(claims) != 2 {
		t.Fatalf("claimed %d: %v", len(claims), err)
	}
	// The second fails, then is retried by hand: leased again, manually.
	d := claims[1].Delivery
	d.Status, d.Attempts, d.UpdatedAt = herald.StatusFailed, 1, now
	if err := s.CompleteDeliveries(ctx, []herald.Completion{{Delivery: d, Attempt: herald.Attempt{ID: herald.NewID(herald.PrefixAttempt, now),
		DeliveryID: d.ID, TenantID: "t", Number: 1, StartedAt: now, StatusCode: 500, Trigger: herald.TriggerAuto}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LeaseDelivery(ctx, "t", d.ID, now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	claims, err = s.ClaimDeliveries(ctx, herald.ClaimParams{Now: now, Limit: 10, LeaseSlack: time.Hour})
	if err != nil || len(claims) != 1 || claims[0].Delivery.ID != ids[0] {
		t.Fatalf("after a restart claimed %+v (%v), want %s again", claims, err, ids[0])
	}
	got, err := s.GetDelivery(ctx, "t", d.ID)
	if err != nil || got.Status != herald.StatusFailed || got.LastError != "interrupted by a restart; retry by hand" {
		t.Fatalf("the manual attempt after a restart: %+v (%v)", got, err)
	}
}

// MakeChannel makes tenant t and a webhook channel in it with maxInFlight
// requests in flight; exported for the store's external tests
// (bench_test.go).
func MakeChannel(t testing.TB, s *Store, now time.Time, maxInFlight int) *herald.Channel {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte("key"))
	if err := s.CreateTenant(ctx, &herald.Tenant{ID: "t", Name: "t", CreatedAt: now},
		&herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, now), TenantID: "t", Prefix: "hk_t", Hash: sum[:], CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	ch := &herald.Channel{ID: herald.NewID(herald.PrefixChannel, now), TenantID: "t", Kind: herald.ChannelWebhook, Name: "c",
		URL: "https://example.com/hook", Headers: map[string]string{}, Policy: herald.StandardPolicy(), Enabled: true,
		MaxInFlight: maxInFlight, Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateChannel(ctx, ch); err != nil {
		t.Fatal(err)
	}
	return ch
}
