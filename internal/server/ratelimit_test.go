package server_test

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/server"
)

// TestRateLimitLongerThanLease: when a channel's rate limit would make
// deliveries wait longer than their lease could cover, claims do not take
// them until their slot is near — so each is still sent exactly once, at
// the limit's pace.
func TestRateLimitLongerThanLease(t *testing.T) {
	h := startHerald(t, func(c *server.Config) { c.LeaseSlack = time.Second }) // at most 0.5 s of waiting while leased
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, map[string]any{"rate_limit_per_sec": 2, "timeout_s": 1})
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	item := map[string]any{"type": "order.completed", "source": "shop", "data": h.example("order.completed")}
	items := make([]any, 6)
	for i := range items {
		items[i] = item
	}
	start := time.Now()
	h.must(202, "POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": items})
	got := rc.waitN(t, 6)
	if span := got[5].At.Sub(start); span < 2*time.Second {
		t.Errorf("6 events at 2/s arrived within %v, want at least 2 s", span)
	}
	// Leases here last 2 s; had a delivery waited 2.5 s while leased it
	// would have been claimed and sent again.
	rc.quiet(t, 6, 1500*time.Millisecond)
	seen := map[string]bool{}
	for _, r := range got {
		id := r.Header.Get("webhook-id")
		if seen[id] {
			t.Errorf("event %s sent twice", id)
		}
		seen[id] = true
	}
}
