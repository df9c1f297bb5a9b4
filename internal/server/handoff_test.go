package server_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/server"
)

// With embedded SQLite, publishing hands new deliveries straight to the
// dispatcher (see dispatch/handoff.go). These tests show that nothing is
// lost, sent twice or sent out of turn that way.

// warmUp publishes one event and waits for it: the dispatcher's first
// claim has then found the store drained, so what follows is handed off.
func warmUp(t *testing.T, h *herald, tid, key string, rc *receiver) {
	t.Helper()
	h.publish(tid, key, "order.completed", "shop", h.example("order.completed"))
	rc.waitN(t, 1)
	time.Sleep(50 * time.Millisecond) // its result is stored
}

// eventIDs returns the event id of each request, in arrival order.
func eventIDs(rs []received) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i], _ = r.payload()["id"].(string)
	}
	return ids
}

// once fails unless each id arrived exactly once.
func once(t *testing.T, ids []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Fatalf("event %q arrived twice or without an id", id)
		}
		seen[id] = true
	}
}

// TestHandoffSkipsClaims: a burst is sent from the handoff queue, without
// a single claim, each event once.
func TestHandoffSkipsClaims(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	rc := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, rc.URL, nil)
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	warmUp(t, h, tid, key, rc)
	before := h.srv.DispatchStats()

	item := map[string]any{"type": "order.completed", "source": "shop", "data": h.example("order.completed")}
	items := make([]any, 100)
	for i := range items {
		items[i] = item
	}
	for range 3 {
		h.must(202, "POST", "/v1/tenants/acme/events/batch", key, map[string]any{"events": items})
	}
	rc.waitN(t, 301)
	rc.quiet(t, 301, 200*time.Millisecond)
	once(t, eventIDs(rc.requests()))
	after := h.srv.DispatchStats()
	if got := after.HandedOff - before.HandedOff; got != 300 {
		t.Errorf("%d of 300 deliveries were handed off", got)
	}
	if after.Claimed != before.Claimed {
		t.Errorf("%d deliveries were claimed, want none", after.Claimed-before.Claimed)
	}
	for _, d := range h.deliveries(tid, key, "status=pending&limit=100") {
		t.Errorf("delivery %v still pending", d["id"])
	}
}

// slowReceiver answers after d and records the most requests it had open
// at once.
func slowReceiver(t *testing.T, d time.Duration, peak *atomic.Int32) *receiver {
	var cur atomic.Int32
	return newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		time.Sleep(d)
		w.WriteHeader(http.StatusNoContent)
	})
}

// TestHandoffOverflowsToStore: past its queue's bound (64 per in-flight
// slot) a channel's new deliveries wait in the store, and none is handed
// off past them: with one request at a time, events arrive in the order
// they were published, each once.
func TestHandoffOverflowsToStore(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	var peak, cur atomic.Int32
	// Once held, the receiver answers nothing until all is published, so
	// the queue fills however fast it is.
	var held atomic.Bool
	gate := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		if held.Load() {
			<-gate
		}
		time.Sleep(time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	})
	ch, _ := h.channel(tid, key, rc.URL, map[string]any{"max_in_flight": 1})
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	warmUp(t, h, tid, key, rc)
	before := h.srv.DispatchStats()

	data := h.example("order.completed")
	order := []string{eventIDs(rc.requests())[0]}
	held.Store(true)
	for range 200 {
		order = append(order, h.publish(tid, key, "order.completed", "shop", data)["id"].(string))
	}
	close(gate)
	got := eventIDs(rc.waitN(t, len(order)))
	rc.quiet(t, len(order), 200*time.Millisecond)
	after := h.srv.DispatchStats()
	t.Logf("handed off %d, claimed %d, queue full %d times", after.HandedOff-before.HandedOff, after.Claimed-before.Claimed, after.Backlogs-before.Backlogs)
	if after.Backlogs == before.Backlogs || after.Claimed == before.Claimed || after.HandedOff == before.HandedOff {
		t.Error("want some deliveries handed off and, past the full queue, some claimed from the store")
	}
	for i := range order {
		if got[i] != order[i] {
			t.Fatalf("request %d was event %s, want %s: out of the order of publishing", i+1, got[i], order[i])
		}
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("receiver had %d requests open at once, want max_in_flight 1", p)
	}
}

// TestHandoffDoesNotOvertakeBacklog: deliveries that waited in the store
// (here over a restart, delivery held back before it) go before events
// published after delivery resumed, which are not handed off past them.
func TestHandoffDoesNotOvertakeBacklog(t *testing.T) {
	dir := t.TempDir()
	h := startHeraldIn(t, dir, func(c *server.Config) { c.DeliveryGate = make(chan struct{}) })
	tid, key := h.tenant("acme")
	var peak atomic.Int32
	rc := slowReceiver(t, time.Millisecond, &peak)
	ch, _ := h.channel(tid, key, rc.URL, map[string]any{"max_in_flight": 1})
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	data := h.example("order.completed")
	var order []string
	for range 30 {
		order = append(order, h.publish(tid, key, "order.completed", "shop", data)["id"].(string))
	}
	h.stop()
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("%d requests while delivery was held back", n)
	}
	h = startHeraldIn(t, dir)
	for range 30 {
		order = append(order, h.publish(tid, key, "order.completed", "shop", data)["id"].(string))
	}
	got := eventIDs(rc.waitN(t, 60))
	rc.quiet(t, 60, 100*time.Millisecond)
	once(t, got)
	early := map[string]bool{}
	for _, id := range order[:30] {
		early[id] = true
	}
	for i, id := range got[:30] {
		if !early[id] {
			t.Fatalf("request %d was event %s, published after the restart, before all 30 that waited", i+1, id)
		}
	}
}

// TestHandoffQueueSurvivesRestart: deliveries still queued when Herald
// stops are released to the store and sent after it starts again.
func TestHandoffQueueSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := startHeraldIn(t, dir)
	tid, key := h.tenant("acme")
	var slow atomic.Bool
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			time.Sleep(300 * time.Millisecond)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ch, _ := h.channel(tid, key, rc.URL, map[string]any{"max_in_flight": 1})
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	warmUp(t, h, tid, key, rc)
	before := h.srv.DispatchStats()
	slow.Store(true)
	data := h.example("order.completed")
	var ids []string
	for range 10 {
		ids = append(ids, h.publish(tid, key, "order.completed", "shop", data)["id"].(string))
	}
	rc.waitN(t, 2)
	h.stop()
	if st := h.srv.DispatchStats(); st.HandedOff == before.HandedOff || st.Claimed != before.Claimed {
		t.Fatalf("want the events handed off, not claimed: %+v then %+v", before, st)
	}
	sent := len(rc.requests()) - 1
	if sent >= 10 {
		t.Fatalf("all %d were sent before the stop; nothing was left queued", sent)
	}
	t.Logf("%d of 10 sent before the stop", sent)

	slow.Store(false)
	h2 := startHeraldIn(t, dir)
	// (The warm-up's event arrived too: wait for these ten, not for ten.)
	arrived := map[string]bool{}
	all := func() bool {
		for _, id := range ids {
			if !arrived[id] {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(15 * time.Second)
	for !all() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		for _, id := range eventIDs(rc.requests()) {
			arrived[id] = true
		}
	}
	for _, id := range ids {
		if !arrived[id] {
			t.Errorf("event %s was never delivered", id)
		}
	}
	for _, d := range h2.deliveries(tid, key, "status=pending&limit=100") {
		t.Errorf("delivery %v still pending after the restart", d["id"])
	}
}

// TestHandoffSeesChannelChange: a queued delivery goes where its channel
// points when it is sent, not where it pointed at publish.
func TestHandoffSeesChannelChange(t *testing.T) {
	h := startHerald(t)
	tid, key := h.tenant("acme")
	var peak atomic.Int32
	old := slowReceiver(t, 50*time.Millisecond, &peak)
	moved := newReceiver(t, nil)
	ch, _ := h.channel(tid, key, old.URL, map[string]any{"max_in_flight": 1})
	h.subscribe(tid, key, ch, []string{"order.completed"}, nil, "")
	warmUp(t, h, tid, key, old)
	data := h.example("order.completed")
	for range 10 {
		h.publish(tid, key, "order.completed", "shop", data)
	}
	old.waitN(t, 2)
	h.must(200, "PATCH", "/v1/tenants/acme/channels/"+ch, key, map[string]any{"url": moved.URL})
	deadline := time.Now().Add(15 * time.Second)
	for len(old.requests())+len(moved.requests()) < 11 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	o, m := len(old.requests()), len(moved.requests())
	t.Logf("old URL got %d (with the warm-up), new URL %d", o, m)
	if o+m != 11 {
		t.Fatalf("%d requests in all, want 11", o+m)
	}
	if m < 6 {
		t.Errorf("only %d of the 10 went to the new URL", m)
	}
}
