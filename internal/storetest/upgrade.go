package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// FirstAttemptUpgrade is the store-independent half of a test of the
// migration that keeps a delivery's first attempt on its row. s has just
// been migrated from a version with tenant "t" and two pending deliveries:
// dlv_old, whose first attempt att_old1 is in attempts, and dlv_new, with
// none. It records att_old2 for dlv_old and att_new1 for dlv_new, and
// checks that both deliveries list all their attempts in order.
func FirstAttemptUpgrade(t *testing.T, s herald.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	complete := func(id string, number int, attID string) {
		t.Helper()
		d, err := s.GetDelivery(ctx, "t", id)
		if err != nil {
			t.Fatal(err)
		}
		d.Attempts, d.Status, d.LastStatus, d.UpdatedAt = number, herald.StatusSucceeded, 200, now
		a := herald.Attempt{ID: attID, DeliveryID: id, TenantID: "t", Number: number, StartedAt: now, DurationMS: 3, StatusCode: 200, Trigger: herald.TriggerAuto}
		if err := s.CompleteDeliveries(ctx, []herald.Completion{{Delivery: *d, Attempt: a}}); err != nil {
			t.Fatal(err)
		}
	}
	complete("dlv_old", 2, "att_old2")
	complete("dlv_new", 1, "att_new1")
	wantIDs := func(id string, want ...string) {
		t.Helper()
		atts, err := s.ListAttempts(ctx, "t", id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range atts {
			got = append(got, a.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s's attempts: %v, want %v", id, got, want)
		}
	}
	wantIDs("dlv_old", "att_old1", "att_old2")
	wantIDs("dlv_new", "att_new1")
}
