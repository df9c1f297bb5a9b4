package dispatch

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/testenv"
)

// releasingStore is a real store that counts released deliveries.
type releasingStore struct {
	herald.Store
	released atomic.Int64
}

func (s *releasingStore) ReleaseDeliveries(ctx context.Context, ids []string) error {
	s.released.Add(int64(len(ids)))
	return s.Store.ReleaseDeliveries(ctx, ids)
}

// collect waits until n ids have arrived or the deadline passes, and
// returns how often each arrived.
func (r *rig) collect(t *testing.T, n int, within time.Duration) map[string]int {
	t.Helper()
	seen := map[string]int{}
	deadline := time.After(within)
	for got := 0; got < n; got++ {
		select {
		case id := <-r.ids:
			seen[id]++
		case <-deadline:
			t.Fatalf("%d of %d requests arrived", got, n)
		}
	}
	return seen
}

// TestSharedQueueReleasedWhenLeaseRunsShort: with PostgreSQL a queued
// delivery's lease ends sharedQueueWait after its request would have; one
// still queued when its lease no longer covers a request is released, not
// sent, and another claim (any process's) sends it. Each event arrives
// once.
func TestSharedQueueReleasedWhenLeaseRunsShort(t *testing.T) {
	r := newSharedRig(t, 1, 20*time.Millisecond)
	clock := &testenv.Clock{}
	r.clock = clock
	const n = 20
	want := r.backlog(t, n)
	store := &releasingStore{Store: r.st}
	stop := r.run(store, 50*time.Millisecond)
	defer stop()
	seen := r.collect(t, 2, 10*time.Second)
	// The first claim queued what it could not start; past its queued
	// leases' margin, those are released as they come up.
	clock.Advance(sharedQueueWait + 30*time.Second)
	for id, k := range r.collect(t, n-2, 30*time.Second) {
		seen[id] += k
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Fatalf("event %s arrived %d times, want once", id, seen[id])
		}
	}
	if store.released.Load() == 0 {
		t.Fatal("no queued delivery was released once its lease ran short")
	}
	t.Logf("%d queued deliveries released and claimed again", store.released.Load())
}

// TestSharedQueueSeesDisabledChannel: with PostgreSQL, deliveries queued
// when their channel is disabled are not sent once the dispatcher's view
// of the config (at most sharedVersionAge old) has caught up; they fail,
// as the claim of a disabled channel's delivery does.
func TestSharedQueueSeesDisabledChannel(t *testing.T) {
	r := newSharedRig(t, 1, 20*time.Millisecond)
	const n = 100
	r.backlog(t, n)
	stop := r.run(r.st, 50*time.Millisecond)
	defer stop()
	r.collect(t, 3, 10*time.Second)
	ctx := context.Background()
	ch := *r.ch
	ch.Enabled, ch.DisabledReason, ch.UpdatedAt = false, "turned off by hand", time.Now().UTC()
	must(t, r.st.UpdateChannel(ctx, &ch))
	// Its one request in flight may finish, and the config may be read
	// sharedVersionAge late.
	time.Sleep(sharedVersionAge + 200*time.Millisecond)
	before := r.got.Load()
	time.Sleep(500 * time.Millisecond)
	if after := r.got.Load(); after != before {
		t.Fatalf("%d requests arrived from a channel disabled 700 ms before", after-before)
	}
	if before > n/2 {
		t.Fatalf("%d of %d were sent before the channel was disabled: nothing was left queued to test", before, n)
	}
	// Every delivery ends: sent, or failed for the disabled channel.
	deadline := time.Now().Add(10 * time.Second)
	for {
		failed, err := r.st.ListDeliveries(ctx, "a", herald.DeliveryFilter{Status: herald.StatusFailed}, herald.Page{Limit: 1000})
		must(t, err)
		if int64(len(failed)) == n-before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries failed, want the %d not sent", len(failed), n-before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSharedQueueFollowsSendRate: with a shared store a claim may queue
// for a channel what it sent in sharedQueueSeconds (at least a slot's
// worth each), so that its queue starts well within the queued leases;
// the claim carries that bound per channel, and what the dispatcher holds.
func TestSharedQueueFollowsSendRate(t *testing.T) {
	d := New(Config{Channels: oneChannel{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ls := d.lanes
	ls.mu.Lock()
	hung := ls.laneOf(&herald.Channel{ID: "ch_hung", MaxInFlight: 4})
	hung.held = 3
	fast := ls.laneOf(&herald.Channel{ID: "ch_fast", MaxInFlight: 4})
	t0 := time.Now()
	fast.since = t0
	for i := range 1000 { // 1,000 a second
		fast.ended(t0.Add(time.Duration(i+1) * time.Millisecond))
	}
	ls.mu.Unlock()
	var p herald.ClaimParams
	ls.beginClaim(&p)
	if p.QueueWait != sharedQueueWait {
		t.Fatalf("queued leases last %v longer, want %v", p.QueueWait, sharedQueueWait)
	}
	if got := p.QueueOf("ch_hung"); got != 4 {
		t.Fatalf("a channel that has sent nothing may queue %d, want its 4 slots' worth", got)
	}
	if got := p.QueueOf("ch_fast"); got != queuePerClaim {
		t.Fatalf("a channel sending 1,000/s may queue %d, want the whole %d", got, queuePerClaim)
	}
	if p.Held["ch_hung"] != 3 || p.Held["ch_fast"] != 0 {
		t.Fatalf("held %v, want ch_hung's 3 only", p.Held)
	}
}
