package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/channel"
	"github.com/heraldhq/herald/internal/sqlite"
	"github.com/heraldhq/herald/internal/target"
)

// heldStore is a real SQLite store whose results are not written until
// open is closed: a store falling behind the receiver.
type heldStore struct {
	*sqlite.Store
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
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Synchronous: "NORMAL", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	store := &heldStore{Store: st, open: make(chan struct{})}

	var got atomic.Int64
	seen := make(map[string]int)
	ids := make(chan string, 10000)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ ID string }
		if err := json.NewDecoder(r.Body).Decode(&p); err == nil {
			ids <- p.ID
		}
		got.Add(1)
	}))
	t.Cleanup(rc.Close)

	now := time.Now().UTC()
	sum := sha256.Sum256([]byte("key"))
	must(t, st.CreateTenant(ctx, &herald.Tenant{ID: "a", Name: "A", CreatedAt: now},
		&herald.APIKey{ID: herald.NewID(herald.PrefixAPIKey, now), TenantID: "a", Prefix: "hk_a", Hash: sum[:], CreatedAt: now}))
	ch := &herald.Channel{ID: herald.NewID(herald.PrefixChannel, now), TenantID: "a", Kind: herald.ChannelWebhook, Name: "c",
		URL: rc.URL + "/hook", Policy: herald.StandardPolicy(), Enabled: true, MaxInFlight: 4,
		Secrets: []herald.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, CreatedAt: now, UpdatedAt: now}
	must(t, st.CreateChannel(ctx, ch))
	const n = 3 * maxCompletionBatch
	pubs := make([]herald.Publication, n)
	for i := range pubs {
		e := herald.Event{ID: herald.NewID(herald.PrefixEvent, now), TenantID: "a", Type: "order.completed", Source: "shop",
			OccurredAt: now, Data: json.RawMessage(`{"n":1}`), CreatedAt: now}
		pubs[i] = herald.Publication{Event: e, ChannelIDs: []string{ch.ID}}
	}
	if _, err := st.Publish(ctx, pubs); err != nil {
		t.Fatal(err)
	}

	d := New(Config{Store: store, Sender: channel.NewSender(target.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}), "Herald/test"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: 20 * time.Millisecond, Local: true, Channels: st})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(runCtx)
	}()
	release := sync.OnceFunc(func() { close(store.open) })
	defer func() {
		release() // a failed check must not leave sends waiting on the store
		stop()
		<-done
	}()

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
