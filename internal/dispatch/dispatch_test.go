package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/channel"
	"github.com/heraldhq/herald/internal/postgres"
	"github.com/heraldhq/herald/internal/sqlite"
	"github.com/heraldhq/herald/internal/target"
	"github.com/heraldhq/herald/internal/testenv"
)

// heldStore is a real store whose results are not written until open is
// closed: a store falling behind the receiver.
type heldStore struct {
	herald.Store
	open chan struct{}
}

func (s *heldStore) CompleteDeliveries(ctx context.Context, cs []herald.Completion) error {
	<-s.open
	return s.Store.CompleteDeliveries(ctx, cs)
}

// TestSendingWaitsForResults: on SQLite a slot is freed as soon as the
// receiver answers, before the result is written; while the store cannot
// keep up, sending stops after about one batch of unwritten results
// instead of running ahead of it (each waiting send holds a goroutine and
// its stack). Once the store catches up, everything arrives exactly once.
func TestSendingWaitsForResults(t *testing.T) {
	r := newRig(t, 4, 0)
	store := &heldStore{Store: r.st, open: make(chan struct{})}
	const n = 3 * maxCompletionBatch
	r.backlog(t, n)
	release := sync.OnceFunc(func() { close(store.open) })
	stop := r.run(store, 20*time.Millisecond)
	defer func() {
		release() // a failed check must not leave sends waiting on the store
		stop()
	}()
	got, ids := &r.got, r.ids
	seen := make(map[string]int)

	// Wait until sending stops: no new request for 300 ms.
	last, since := int64(-1), time.Now()
	for time.Since(since) < 300*time.Millisecond {
		if c := got.Load(); c != last {
			last, since = c, time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The write holds the first few results and a batch waits behind it;
	// sends that looked as the batch filled, and one in each of the
	// channel's slots, add a handful more.
	if limit := int64(maxCompletionBatch + 50); last > limit || last <= maxCompletionBatch {
		t.Fatalf("%d requests were sent while no result could be written, want more than %d and at most %d", last, maxCompletionBatch, limit)
	}
	release()
	deadline := time.After(30 * time.Second)
	for len(seen) < n {
		select {
		case id := <-ids:
			seen[id]++
			if seen[id] > 1 {
				t.Fatalf("event %s arrived twice", id)
			}
		case <-deadline:
			t.Fatalf("%d of %d events arrived", len(seen), n)
		}
	}
}

// rig is a real store (SQLite unless the test asks for PostgreSQL) with
// one channel whose receiver, a local HTTP server, passes on each event's
// id in the order they arrive.
type rig struct {
	st     herald.Store
	shared bool // st is PostgreSQL
	clock  herald.Clock
	ch     *herald.Channel
	ids    chan string
	got    atomic.Int64
}

// newRig makes a SQLite store with one channel allowed maxInFlight
// requests, to a receiver that takes at least delay to answer.
func newRig(t *testing.T, maxInFlight int, delay time.Duration) *rig {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{Synchronous: "NORMAL", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newRigOn(t, st, maxInFlight, delay)
}

// newSharedRig is newRig on a fresh PostgreSQL database.
func newSharedRig(t *testing.T, maxInFlight int, delay time.Duration) *rig {
	t.Helper()
	st, err := postgres.Open(context.Background(), testenv.PostgresDB(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := newRigOn(t, st, maxInFlight, delay)
	r.shared = true
	return r
}

func newRigOn(t *testing.T, st herald.Store, maxInFlight int, delay time.Duration) *rig {
	t.Helper()
	ctx := context.Background()
	r := &rig{st: st, ids: make(chan string, 10000), clock: herald.SystemClock{}}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		time.Sleep(delay)
		var p struct{ ID string }
		if err := json.NewDecoder(req.Body).Decode(&p); err == nil {
			r.ids <- p.ID
		}
		r.got.Add(1)
	}))
	t.Cleanup(rc.Close)
	now := time.Now().UTC()
	sum := sha256.Sum256([]byte("key"))
	must(t, st.CreateTenant(ctx, &herald.Tenant{ID: "a", Name: "A", CreatedAt: now},
		&herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, now), TenantID: "a", Prefix: "hk_a", Hash: sum[:], CreatedAt: now}))
	r.ch = &herald.Channel{ID: herald.NewID(herald.PrefixChannel, now), TenantID: "a", Kind: herald.ChannelWebhook, Name: "c",
		URL: rc.URL + "/hook", Policy: herald.StandardPolicy(), Enabled: true, MaxInFlight: maxInFlight,
		Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: now, UpdatedAt: now}
	must(t, st.CreateChannel(ctx, r.ch))
	return r
}

// backlog stores n events for the channel, a millisecond apart and all
// due, and returns their ids oldest first.
func (r *rig) backlog(t *testing.T, n int) []string {
	t.Helper()
	start := time.Now().UTC().Add(-time.Duration(n) * time.Millisecond)
	pubs := make([]herald.Publication, n)
	ids := make([]string, n)
	for i := range pubs {
		at := start.Add(time.Duration(i) * time.Millisecond)
		e := herald.Event{ID: herald.NewID(herald.PrefixEvent, at), TenantID: "a", Type: "order.completed", Source: "shop",
			OccurredAt: at, Data: json.RawMessage(`{"n":1}`), CreatedAt: at}
		pubs[i], ids[i] = herald.Publication{Event: e, ChannelIDs: []string{r.ch.ID}}, e.ID
	}
	if _, err := r.st.Publish(context.Background(), pubs); err != nil {
		t.Fatal(err)
	}
	return ids
}

// run starts a dispatcher on store (the rig's, or one wrapping it),
// looking at the store at least every poll, and returns what stops it.
func (r *rig) run(store herald.DeliveryStore, poll time.Duration) (stop func()) {
	d := New(Config{Store: store, Sender: channel.NewSender(target.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}), "Herald/test"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: poll, Local: !r.shared, Channels: r.st, Clock: r.clock})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// countingStore is a real store that counts claims.
type countingStore struct {
	herald.Store
	claims atomic.Int64
	// topUps counts claims made for a channel (of max_in_flight 1) while
	// its queue still held deliveries: busy above its one slot, but
	// short of the slot and the whole queue room.
	topUps atomic.Int64
}

func (s *countingStore) ClaimDeliveries(ctx context.Context, p herald.ClaimParams) ([]herald.Claim, error) {
	s.claims.Add(1)
	for _, b := range p.Busy {
		if b > 1 && b < 1+p.Queue {
			s.topUps.Add(1)
		}
	}
	return s.Store.ClaimDeliveries(ctx, p)
}

// TestBacklogClaimedInBatches: a channel allowed one request in flight
// drains a backlog in order at a claim per batch, its deliveries queued
// beyond the free slot, rather than a claim per freed slot; and its queue
// is topped up before it runs dry, behind what it holds.
func TestBacklogClaimedInBatches(t *testing.T) {
	// A receiver that answers in 200 µs drains half a queue in about
	// 13 ms: time for the loop to see it run low and claim, even on a
	// busy machine (an instant one could drain it before the loop runs).
	testBacklogClaimedInBatches(t, newRig(t, 1, 200*time.Microsecond))
}

// TestSharedBacklogClaimedInBatches: the same with PostgreSQL, which
// other processes may share.
func TestSharedBacklogClaimedInBatches(t *testing.T) {
	testBacklogClaimedInBatches(t, newSharedRig(t, 1, 200*time.Microsecond))
}

func testBacklogClaimedInBatches(t *testing.T, r *rig) {
	const n = 600
	want := r.backlog(t, n)
	store := &countingStore{Store: r.st}
	// No polling: every claim is one the dispatcher asked for, and a
	// backlog left waiting for a tick would show as a timeout.
	stop := r.run(store, time.Hour)
	defer stop()
	deadline := time.After(30 * time.Second)
	for i := range n {
		select {
		case id := <-r.ids:
			if id != want[i] {
				t.Fatalf("delivery %d was event %s, want %s: the backlog was not sent in order", i, id, want[i])
			}
		case <-deadline:
			t.Fatalf("%d of %d events arrived", i, n)
		}
	}
	// A claim takes at most a batch (128 by default), so the backlog
	// needs five; top-ups come while the queue still holds some, so a few
	// more come back short: 7 here, and room to spare. One per freed slot
	// would be 600.
	if c, limit := store.claims.Load(), int64(2*(n/defaultClaimBatch+1)+3); c > limit {
		t.Fatalf("%d claims for a backlog of %d, want at most %d", c, n, limit)
	}
	if store.topUps.Load() == 0 {
		t.Fatalf("no claim came while the queue still held deliveries (%d claims): the channel ran dry before each", store.claims.Load())
	}
	t.Logf("%d claims, %d of them topping up the queue", store.claims.Load(), store.topUps.Load())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// oneChannel is a ChannelSource holding one channel.
type oneChannel struct{ ch *herald.Channel }

func (s oneChannel) ConfigVersion(context.Context) (int64, error) { return 1, nil }
func (s oneChannel) GetChannel(_ context.Context, _, id string) (*herald.Channel, error) {
	if id != s.ch.ID {
		return nil, herald.ErrNotFound
	}
	return s.ch, nil
}

// TestReserveWakesOnlyWhenNoSlotWill: a delivery that joins a channel's
// backlog needs no wake-up while the channel has requests running (their
// freed slots bring a claim), and needs one when nothing of the channel
// runs or waits.
func TestReserveWakesOnlyWhenNoSlotWill(t *testing.T) {
	ch := &herald.Channel{ID: "ch_1", TenantID: "a", Enabled: true, MaxInFlight: 2}
	d := New(Config{Local: true, Channels: oneChannel{ch}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e := &herald.Event{ID: "evt_1", TenantID: "a", Data: json.RawMessage(`{}`)}
	// A new lane starts with a backlog: the store may hold its deliveries.
	chs, wake := d.Reserve(context.Background(), e, []string{ch.ID})
	if chs != nil || !wake {
		t.Fatalf("idle channel with a backlog: took %v, wake %v; want none taken and a wake-up", chs, wake)
	}
	d.lanes.byCh[ch.ID].busy = 1
	chs, wake = d.Reserve(context.Background(), e, []string{ch.ID})
	if chs != nil || wake {
		t.Fatalf("busy channel with a backlog: took %v, wake %v; want none taken and no wake-up", chs, wake)
	}
	// Without a backlog it is taken, and nothing is left to wake for.
	d.lanes.clearBacklog(d.lanes.byCh[ch.ID])
	chs, wake = d.Reserve(context.Background(), e, []string{ch.ID})
	if len(chs) != 1 || chs[0] != ch || wake {
		t.Fatalf("channel without a backlog: took %v, wake %v; want it taken, no wake-up", chs, wake)
	}
}

// TestQueueFollowsSendRate: a channel's queue takes what the channel sends
// in queueSeconds when that is more than queuePerSlot per slot, so a burst
// to a fast channel stays queued; a channel whose requests hang keeps the
// per-slot bound.
func TestQueueFollowsSendRate(t *testing.T) {
	e := &herald.Event{ID: "evt_1", TenantID: "a", Data: json.RawMessage(`{}`)}
	// taken reserves handoffs until one is refused: how many the queue took.
	taken := func(d *Dispatcher, ch *herald.Channel) int {
		for n := 0; ; n++ {
			chs, _ := d.Reserve(context.Background(), e, []string{ch.ID})
			if chs == nil {
				return n
			}
			if n > 100_000 {
				t.Fatal("the queue took 100,000 deliveries: unbounded")
			}
		}
	}
	withLane := func(ch *herald.Channel, ended func(l *lane)) *Dispatcher {
		d := New(Config{Local: true, Channels: oneChannel{ch}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		d.lanes.mu.Lock()
		l := d.lanes.laneOf(ch)
		d.lanes.clearBacklog(l)
		d.lanes.dirty = false
		ended(l)
		d.lanes.mu.Unlock()
		return d
	}
	t0 := time.Now()
	one := &herald.Channel{ID: "ch_1", TenantID: "a", Enabled: true, MaxInFlight: 1}
	idle := withLane(one, func(*lane) {})
	if n := taken(idle, one); n != queuePerSlot {
		t.Fatalf("a channel that has sent nothing queued %d, want %d (queuePerSlot × its one slot)", n, queuePerSlot)
	}
	// 1,000 requests a second for a second and a half.
	fast := withLane(one, func(l *lane) {
		l.since = t0
		for i := range 1500 {
			l.ended(t0.Add(time.Duration(i+1) * time.Millisecond))
		}
	})
	if n, want := taken(fast, one), 1000*queueSeconds; n < want*9/10 || n > want*11/10 {
		t.Fatalf("a channel sending 1,000/s queued %d, want about %d", n, want)
	}
	// 64 requests time out together every 2 seconds, for 10 seconds.
	wide := &herald.Channel{ID: "ch_2", TenantID: "a", Enabled: true, MaxInFlight: 64}
	hung := withLane(wide, func(l *lane) {
		l.since = t0
		for i := range 5 {
			for range 64 {
				l.ended(t0.Add(time.Duration(i+1) * 2 * time.Second))
			}
		}
	})
	if n := taken(hung, wide); n != queuePerSlot*64 {
		t.Fatalf("a channel whose requests hang queued %d, want %d (queuePerSlot × 64 slots)", n, queuePerSlot*64)
	}
}

// TestClaimKeepsGlobalLimit: queued deliveries keep starting while a claim
// runs, so when it ends the global limit may have less room than when it
// began; what does not fit is queued, not started.
func TestClaimKeepsGlobalLimit(t *testing.T) {
	ls := newLanes(false)
	ch := &herald.Channel{ID: "ch_1", TenantID: "a", Enabled: true, MaxInFlight: 4}
	var claims []herald.Claim
	for i := range 4 {
		id := fmt.Sprintf("dlv_%d", i)
		claims = append(claims, herald.Claim{Channel: ch, Delivery: herald.Delivery{ID: id}, Event: herald.Event{ID: "evt_" + id}})
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	start := ls.endClaim(herald.ClaimParams{Busy: map[string]int{}}, ls.gen, claims, false, 1)
	l := ls.byCh[ch.ID]
	if len(start) != 1 || len(l.queue) != 3 || l.busy != 1 {
		t.Fatalf("room for 1 more in flight: started %d, queued %d, busy %d; want 1, 3, 1", len(start), len(l.queue), l.busy)
	}
	if l.queue[0].c.Delivery.ID != "dlv_1" {
		t.Fatalf("queued first %s, want dlv_1: claims keep their order", l.queue[0].c.Delivery.ID)
	}
}

// goroutineID is the calling goroutine's id, from its stack's header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

// alive says whether goroutine id still exists.
func alive(id string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Contains(string(buf), "goroutine "+id+" [")
}

// TestWorkersWaitForTheNext: a request started while a worker waits runs
// on that worker, not on a new goroutine; and waiting workers end when
// the dispatcher stops, not workerIdle later.
func TestWorkersWaitForTheNext(t *testing.T) {
	d := New(Config{})
	ran := make(chan string)
	task := func(context.Context, func()) { ran <- goroutineID() }
	d.start(nil, task)
	first := <-ran
	// The worker waits once its task has returned and freed its slot.
	for d.inflight.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // into its wait for the next
	d.start(nil, task)
	if second := <-ran; second != first {
		t.Fatalf("the second request ran on goroutine %s, not on the waiting worker %s", second, first)
	}
	d.cancelWork() // as Run does when it returns
	deadline := time.Now().Add(2 * time.Second)
	for alive(first) {
		if time.Now().After(deadline) {
			t.Fatalf("worker %s still waits 2 s after the dispatcher stopped", first)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.wg.Wait()
}
